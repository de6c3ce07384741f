import { describe, expect, it } from 'vitest';
import { newCommandId } from '../runtime/command-id.ts';

describe('generated command ids', () => {
  it('are RFC 9562 version-7 UUIDs carrying their millisecond', () => {
    const id = newCommandId(Date.UTC(2026, 10, 23));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16)).toBe(Date.UTC(2026, 10, 23));
  });

  it('sort by time and do not repeat', () => {
    const ids = Array.from({ length: 10_000 }, (_, index) => newCommandId(1_800_000_000_000 + Math.floor(index / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    const byMillisecond = ids.map((id) => id.slice(0, 13));
    expect([...byMillisecond].sort()).toEqual(byMillisecond);
  });
});

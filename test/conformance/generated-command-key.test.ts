import { describe, expect, it } from 'vitest';
import { newCommandId } from '../../runtime/command-id.ts';
import { generatedCommandId, generatedCommandKey, generatedKeyFloor } from '../../runtime/shard/generated-command-key.ts';

describe('the key of a generated command id', () => {
  it('is the 16 bytes of the UUID and turns back into the same text', () => {
    const id = newCommandId();
    const key = generatedCommandKey(id);
    expect(key?.toString('hex')).toBe(id.replaceAll('-', ''));
    expect(generatedCommandId(key!)).toBe(id);
  });

  it('exists only for canonical lowercase UUIDs, so a client key never maps onto one', () => {
    const id = newCommandId();
    for (const other of [id.toUpperCase(), id.replaceAll('-', ''), `${id}0`, id.slice(1), id.replace('-', 'x'), `{${id.slice(2)}}`, 'g'.repeat(36), 'order-42']) {
      expect(generatedCommandKey(other), other).toBeUndefined();
    }
  });

  it('sorts by the time it was made, below the floor of any later millisecond', () => {
    const made = Date.now();
    const key = generatedCommandKey(newCommandId(made))!;
    expect(Buffer.compare(key, generatedKeyFloor(made + 1))).toBe(-1);
    expect(Buffer.compare(key, generatedKeyFloor(made))).toBe(1);
    expect(Buffer.compare(generatedKeyFloor(made - 1), generatedKeyFloor(made))).toBe(-1);
  });
});

import { z } from 'zod';
import { defineAggregate, reject } from '../../runtime/index.ts';

const quantity = z.number().int().positive().max(1_000_000_000);
const orderId = z.string().trim().min(1).max(256).regex(/\S/);

/** `reservations`: what each order holds, so a release gives back exactly that and a repeat does nothing. */
type InventoryState = { available: number; reserved: number; reservations: Record<string, number> };

/** Stock of one SKU (the aggregate id): restocked, reserved per order, released by order. */
export const inventory = defineAggregate({
  name: 'inventory',
  initialState: (): InventoryState => ({ available: 0, reserved: 0, reservations: {} }),
  events: {
    StockRestocked: {
      schema: z.object({ quantity }),
      evolve: (state, { quantity }) => ({ ...state, available: state.available + quantity }),
    },
    StockReserved: {
      schema: z.object({ orderId: z.string(), quantity }),
      evolve: (state, { orderId, quantity }) => ({
        available: state.available - quantity,
        reserved: state.reserved + quantity,
        reservations: { ...state.reservations, [orderId]: quantity },
      }),
    },
    StockReleased: {
      schema: z.object({ orderId: z.string(), quantity }),
      evolve: (state, { orderId, quantity }) => {
        const reservations = { ...state.reservations };
        delete reservations[orderId];
        return { available: state.available + quantity, reserved: state.reserved - quantity, reservations };
      },
    },
  },
  commands: {
    restock: {
      input: z.object({ quantity }),
      decide: (state, { quantity }) => {
        if (state.available + state.reserved + quantity > Number.MAX_SAFE_INTEGER) return reject('stock-limit-exceeded', 'the stock would not stay exact');
        return [{ type: 'StockRestocked', data: { quantity } }];
      },
    },
    reserve: {
      input: z.object({ orderId, quantity }),
      decide: (state, { orderId, quantity }) => {
        const held = state.reservations[orderId];
        if (held !== undefined) {
          if (held === quantity) return [];
          return reject('already-reserved', `order ${orderId} already holds ${held}`, { reserved: held });
        }
        if (quantity > state.available) return reject('out-of-stock', `${state.available} available, ${quantity} asked`, { available: state.available });
        return [{ type: 'StockReserved', data: { orderId, quantity } }];
      },
    },
    release: {
      input: z.object({ orderId }),
      decide: (state, { orderId }) => {
        const held = state.reservations[orderId];
        // Nothing held (never reserved, or released already): releasing is done.
        if (held === undefined) return [];
        return [{ type: 'StockReleased', data: { orderId, quantity: held } }];
      },
    },
  },
});

import type Database from 'better-sqlite3';
import { defineProjection } from '../../runtime/index.ts';
import { order } from '../orders/order.ts';

/**
 * Per customer: orders placed and money spent; a cancellation takes its order back out.
 * OrderCancelled does not say whose order it was, so the projection keeps its own lookup
 * table of order → customer and total, written in the same transaction as the documents.
 */
export const customerStats = defineProjection({
  name: 'customer-stats',
  version: 1,
  from: [order],
  initial: () => ({ totalOrders: 0, totalSpent: 0 }),
  setup: (db) => db.exec('CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, total REAL NOT NULL) WITHOUT ROWID'),
  key: {
    'order.OrderPlaced': (event) => event.data.customerId,
    'order.OrderCancelled': (event, { db }) => placedOrder(db, event.id)?.customer_id ?? null,
  },
  on: {
    'order.OrderPlaced': (doc, { id, data }, { db }) => {
      db.prepare('INSERT OR REPLACE INTO orders (order_id, customer_id, total) VALUES (?, ?, ?)').run(id, data.customerId, data.total);
      return { totalOrders: doc.totalOrders + 1, totalSpent: doc.totalSpent + data.total };
    },
    'order.OrderCancelled': (doc, { id }, { db }) => {
      const placed = placedOrder(db, id);
      if (placed === undefined) return doc;
      return { totalOrders: doc.totalOrders - 1, totalSpent: doc.totalSpent - placed.total };
    },
  },
});

function placedOrder(db: Database.Database, orderId: string): { customer_id: string; total: number } | undefined {
  return db.prepare<[string], { customer_id: string; total: number }>('SELECT customer_id, total FROM orders WHERE order_id = ?').get(orderId);
}

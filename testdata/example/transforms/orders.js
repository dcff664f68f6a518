// orders(id, customer_id, amount numeric(12,2), status text, note)
//   <-> orders_v2(order_id, customer_id, amount_cents bigint, state smallint, note)
const STATES = { new: 0, paid: 1, shipped: 2, cancelled: 3 };
const NAMES = ["new", "paid", "shipped", "cancelled"];

function forward(row, change) {
  const out = { order_id: row.id, customer_id: row.customer_id, note: row.note };
  if (row.amount !== undefined) {
    // numeric arrives as an exact string: "19.90" -> 1990 without float error
    const [whole, frac = ""] = row.amount.split(".");
    const sign = whole.startsWith("-") ? -1n : 1n;
    out.amount_cents = BigInt(whole) * 100n + sign * BigInt((frac + "00").slice(0, 2));
  }
  if (row.status !== undefined) {
    if (!(row.status in STATES)) throw new Error("unknown order status " + JSON.stringify(row.status));
    out.state = STATES[row.status];
  }
  return out;
}

function backward(row, change) {
  const out = { id: row.order_id, customer_id: row.customer_id, note: row.note };
  if (row.amount_cents !== undefined) {
    const c = BigInt(row.amount_cents);
    const a = c < 0n ? -c : c;
    out.amount = (c < 0n ? "-" : "") + (a / 100n) + "." + String(a % 100n).padStart(2, "0");
  }
  if (row.state !== undefined) out.status = NAMES[row.state];
  return out;
}

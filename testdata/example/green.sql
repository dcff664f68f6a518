-- green: the live slice, old schema
CREATE TABLE customers (
  id         serial PRIMARY KEY,
  name       text NOT NULL,
  email      text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id          bigserial PRIMARY KEY,
  customer_id int NOT NULL,
  amount      numeric(12,2) NOT NULL,
  status      text NOT NULL DEFAULT 'new',
  note        text
);

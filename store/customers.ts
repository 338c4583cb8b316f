/** Customers: who is billed, in which currency, with which payment method. */
export interface CustomerRow {
  id: string;
  external_id: string;
  name: string;
  email: string | null;
  currency: string;
  payment_method: string | null;
  created_at: Date;
}

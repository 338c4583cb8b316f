/**
 * The HTML invoice with a word longer than its column: a customer name of 200 letters without a space (the API
 * takes up to 200), a charge's display name or a dimension value as one long token, a long breakdown value. The
 * table grew to fit the word, and the amount column went off the page: on screen behind a horizontal scroll bar,
 * printed (A4) cut off, so the customer's copy showed no amounts at all. Now long words break inside their cell.
 * Rendered by headless Chromium (the system's; skipped locally without it, like the other browser tests).
 */
import { buildInvoiceDocument } from '../../api/documents/invoice-document';
import { renderInvoiceHtml } from '../../api/documents/invoice-html';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { CHROMIUM_MISSING, findChromium, HeadlessBrowser, launchChromium } from '../support/chromium';

const executable = findChromium();
let browser: HeadlessBrowser | undefined;

beforeAll(async () => {
  if (executable) browser = await launchChromium(executable);
  else if (process.env.CI) throw new Error(CHROMIUM_MISSING);
  else console.warn(CHROMIUM_MISSING);
}, 90_000);

afterAll(async () => browser?.close());

const start = new Date('2031-05-01T00:00:00Z');
const end = new Date('2031-06-01T00:00:00Z');
const invoice: InvoiceRow = {
  id: '6f1d2c1e-0000-4000-8000-000000000077',
  number: 'INV-000077',
  customer_id: 'c1',
  subscription_id: 's1',
  kind: 'period',
  status: 'open',
  currency: 'USD',
  period_start: start,
  period_end: end,
  finalized_at: start,
  paid_at: null,
  created_at: start,
  total: '1234.56',
} as InvoiceRow;

const line = (position: number, description: string, amount: string, breakdown: Record<string, unknown> = {}): InvoiceLineRow =>
  ({ id: `l${position}`, invoice_id: invoice.id, position, kind: 'usage', description, metric_code: 'm', quantity: '1.000000000000', amount, period_start: start, period_end: end, breakdown }) as InvoiceLineRow;

test('a word longer than its column breaks inside the cell: every amount and the total stay on an A4 page', async () => {
  if (!browser) return;
  const doc = buildInvoiceDocument({
    invoice,
    lines: [
      line(0, `Usage of ${'region-'.repeat(40)}eu`, '1000.00', { note: 'x'.repeat(400) }),
      line(1, 'Seats', '234.56'),
    ],
    customer: { name: 'W'.repeat(200), external_id: 'e'.repeat(200), email: null },
  });
  const page = await browser.context.newPage();
  // A4 at 96 dpi, the width a printed page (and most mail clients) gives the document.
  await page.setViewportSize({ width: 794, height: 1123 });
  await page.setContent(renderInvoiceHtml(doc));
  /** The right edge of every cell the selector finds, in CSS pixels. */
  const edges = async (selector: string) =>
    Promise.all(
      (await page.locator(selector).all()).map(async (cell) => {
        const box = (await cell.boundingBox())!;
        return Math.ceil(box.x + box.width);
      }),
    );
  const layout = {
    pageWidth: (await page.evaluate('document.documentElement.clientWidth')) as number,
    contentWidth: (await page.evaluate('document.documentElement.scrollWidth')) as number,
    amounts: await edges('td.amount'),
    total: await edges('td.total'),
  };
  await page.close();
  const offPage = [...layout.amounts, ...layout.total].filter((edge) => edge > layout.pageWidth);
  // Before: { contentWidth: 2683, offPage: [2565, 2565, 2565] }: both amounts and the total off a 794 px page.
  expect({ contentWidth: layout.contentWidth, offPage }).toEqual({ contentWidth: layout.pageWidth, offPage: [] });
}, 90_000);

/**
 * An invoice or credit note as one self-contained HTML page (styles inline, no scripts, no external resources), fit
 * for a browser, printing, or an email attachment. Every piece of text from the database goes through escapeHtml.
 */
import type { InvoiceDocument } from './invoice-document';

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => ESCAPES[char]);
}

// overflow-wrap: anywhere (body): a word longer than its column (a 200-letter name, a long dimension value) breaks
// inside its cell; without it the table grew to fit the word and pushed the amounts off the (printed) page.
// Amounts never break (.num is nowrap).
const STYLE = `
  body { font-family: Helvetica, Arial, 'DejaVu Sans', sans-serif; color: #1d2330; margin: 0; padding: 40px; overflow-wrap: anywhere; }
  .sheet { max-width: 820px; margin: 0 auto; }
  header { display: flex; justify-content: space-between; gap: 24px; border-bottom: 2px solid #1d2330; padding-bottom: 16px; }
  h1 { margin: 4px 0 0; font-size: 28px; }
  .issuer { font-weight: bold; letter-spacing: 0.04em; }
  dl { display: grid; grid-template-columns: auto auto; gap: 2px 12px; margin: 0; font-size: 13px; }
  dt { color: #5d6678; } dd { margin: 0; text-align: right; }
  .parties { display: flex; justify-content: space-between; margin: 20px 0; font-size: 14px; }
  .label { color: #5d6678; font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; }
  .notes { background: #f5f6fa; border-left: 3px solid #3558d6; padding: 8px 12px; font-size: 13px; }
  .notes p { margin: 2px 0; }
  table { width: 100%; border-collapse: collapse; margin-top: 16px; font-size: 13px; }
  th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: #5d6678; border-bottom: 1px solid #1d2330; padding: 6px; }
  td { padding: 6px; vertical-align: top; }
  tr.line td { border-top: 1px solid #e3e6ee; }
  tr.breakdown td { color: #5d6678; font-size: 12px; padding-top: 0; padding-bottom: 2px; }
  tr.breakdown td.breakdown-label { padding-left: 18px; }
  .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
  tfoot td { border-top: 2px solid #1d2330; font-weight: bold; font-size: 15px; }
  .period { color: #5d6678; font-size: 12px; }
  @media print { body { padding: 0; } }
`;

/** The document as a complete HTML page. */
export function renderInvoiceHtml(doc: InvoiceDocument): string {
  const e = escapeHtml;
  const meta: [string, string][] = [
    ['Number', doc.number],
    ['Status', doc.status],
    ...(doc.issuedAt ? ([['Issued', doc.issuedAt]] as [string, string][]) : []),
    ['Period', doc.period],
    ['Currency', doc.currency],
  ];
  const rows = doc.lines
    .map((line) => {
      const main = `<tr class="line" data-kind="${e(line.kind)}">
        <td class="num">${line.number}</td>
        <td><div class="description">${e(line.description)}</div><div class="period">${e(line.period)}</div></td>
        <td class="num quantity">${e(line.quantity)}</td>
        <td class="num amount">${e(line.amount)}</td>
      </tr>`;
      const details = line.breakdown
        .map(
          (row) => `<tr class="breakdown">
        <td></td>
        <td class="breakdown-label">${e(row.label)}</td>
        <td class="breakdown-value" colspan="2">${e(row.value)}</td>
      </tr>`,
        )
        .join('\n');
      return details ? `${main}\n${details}` : main;
    })
    .join('\n');
  const title = `${doc.title} ${doc.number}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<div class="sheet">
<header>
  <div>
    <div class="issuer">${e(doc.issuer)}</div>
    <h1>${e(doc.title)}</h1>
  </div>
  <dl>
    ${meta.map(([label, value]) => `<dt>${e(label)}</dt><dd data-field="${e(label.toLowerCase())}">${e(value)}</dd>`).join('\n    ')}
  </dl>
</header>
<section class="parties">
  <div>
    <div class="label">Bill to</div>
    <div class="customer-name">${e(doc.customer.name)}</div>
    <div>Customer ${e(doc.customer.externalId)}</div>
    ${doc.customer.email ? `<div>${e(doc.customer.email)}</div>` : ''}
  </div>
</section>
${doc.notes.length ? `<section class="notes">${doc.notes.map((note) => `<p>${e(note)}</p>`).join('')}</section>` : ''}
<table>
  <thead>
    <tr><th class="num">#</th><th>Description</th><th class="num">Quantity</th><th class="num">Amount (${e(doc.currency)})</th></tr>
  </thead>
  <tbody>
${rows}
  </tbody>
  <tfoot>
    <tr><td></td><td>Total</td><td></td><td class="num total">${e(doc.total)} ${e(doc.currency)}</td></tr>
  </tfoot>
</table>
</div>
</body>
</html>
`;
}

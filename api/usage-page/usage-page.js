/*
 * The customer usage page (served by GET /usage, see docs/usage-page.md). Plain browser JavaScript, no build step.
 *
 * The token arrives in the URL fragment (`/usage#token=...&subscription=...`): browsers never send a fragment to a
 * server, so the token reaches no access log, proxy or Referer header. It is moved to sessionStorage (this tab
 * only) and removed from the address bar, then sent as `Authorization: Bearer` on the page's own API calls.
 *
 * Money is shown exactly as the API sends it (decimal strings with the currency's minor digits); this script never
 * does arithmetic on amounts. Quantities become numbers only to size the chart's bars.
 * Everything is written with textContent, never innerHTML: names and descriptions cannot inject markup.
 */
/* global document, fetch, history, location, sessionStorage, URLSearchParams, setTimeout, clearTimeout */
'use strict';

(function usagePage() {
  const REFRESH_SECONDS = 5;
  const TOKEN_STORAGE_KEY = 'meterloop.usageToken';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------------------------
  // The token and the subscription, from the fragment.

  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    let token = params.get('token');
    if (token) {
      try {
        sessionStorage.setItem(TOKEN_STORAGE_KEY, token);
        params.delete('token');
        // The address bar (and so a copied link or a screenshot) no longer shows the token.
        const rest = params.toString();
        history.replaceState(null, '', location.pathname + (rest ? '#' + rest : ''));
      } catch {
        // No sessionStorage (a locked-down browser): keep the token in the address bar, the page still works.
      }
    } else {
      try {
        token = sessionStorage.getItem(TOKEN_STORAGE_KEY);
      } catch {
        token = null;
      }
    }
    return { token, subscriptionId: params.get('subscription') };
  }

  function rememberSubscription(id) {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    params.set('subscription', id);
    history.replaceState(null, '', location.pathname + '#' + params.toString());
  }

  // ------------------------------------------------------------------------------------------------------------
  // API calls.

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail || code || 'HTTP ' + status);
      this.status = status;
      this.code = code;
    }
  }

  async function api(token, path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { authorization: 'Bearer ' + token, accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network_error', 'the server could not be reached');
    }
    let body;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body && body.code, body && body.detail);
    return body;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Formatting: strings in, strings out.

  /** "12.50" + "USD" -> "12.50 USD" (the amount exactly as the API sent it). */
  function money(amount, currency) {
    return amount + ' ' + currency;
  }

  /** Negates a decimal string for display ("12.50" -> "-12.50"); no arithmetic. */
  function negated(amount) {
    return amount.charAt(0) === '-' ? amount.slice(1) : '-' + amount;
  }

  /** "2026-11-29T07:00:00.000Z" -> "2026-11-29 07:00 UTC". */
  function when(isoText) {
    if (!isoText) return '';
    return isoText.slice(0, 16).replace('T', ' ') + ' UTC';
  }

  /** "1234567.5" -> "1,234,567.5": digit grouping on the text, so no precision is lost. */
  function quantityText(text) {
    const match = /^(-?)(\d+)(\.\d+)?$/.exec(String(text));
    if (!match) return String(text);
    return match[1] + match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (match[3] || '');
  }

  const KIND_LABELS = { period: 'Period invoice', closing: 'Closing invoice', proration: 'Plan change', credit_note: 'Credit note' };
  const STATUS_LABELS = { open: 'Open', paid: 'Paid', uncollectible: 'Uncollectible', void: 'Void', draft: 'Draft' };

  // ------------------------------------------------------------------------------------------------------------
  // DOM helpers.

  function el(tag, options, children) {
    const node = document.createElement(tag);
    if (options) {
      if (options.className) node.className = options.className;
      if (options.text !== undefined) node.textContent = options.text;
      if (options.data) for (const key of Object.keys(options.data)) node.dataset[key] = options.data[key];
      if (options.colSpan) node.colSpan = options.colSpan;
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const key of Object.keys(attributes || {})) node.setAttribute(key, String(attributes[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function moneyCell(amount, currency, className) {
    return el('td', { className: 'num ' + (className || ''), text: money(amount, currency), data: { amount, currency } });
  }

  function setMoney(node, amount, currency) {
    node.textContent = money(amount, currency);
    node.dataset.amount = amount;
    node.dataset.currency = currency;
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Rendering.

  function tierRange(tier) {
    return tier.to === null || tier.to === undefined ? 'above ' + quantityText(tier.from) : quantityText(tier.from) + ' to ' + quantityText(tier.to);
  }

  /** Short explanation rows under a projected line: tiers, packages, percentages, credit. */
  function breakdownText(line) {
    const b = line.breakdown || {};
    const out = [];
    if (b.includedUnits && b.includedUnits !== '0') out.push(quantityText(b.includedUnits) + ' included, ' + quantityText(b.billableQuantity) + ' billable');
    if (b.model === 'graduated' && Array.isArray(b.tiers)) {
      for (const tier of b.tiers) {
        out.push('Tier ' + tierRange(tier) + ': ' + quantityText(tier.units) + ' × ' + tier.unitPrice + (tier.flatFee && tier.flatFee !== '0' ? ' + ' + tier.flatFee : '') + ' = ' + tier.amount);
      }
    } else if (b.model === 'volume' && b.tier) {
      out.push('Volume tier ' + tierRange(b.tier) + ': ' + quantityText(b.tier.units) + ' × ' + b.tier.unitPrice + ' = ' + b.tier.amount);
    } else if (b.model === 'per_unit') {
      out.push(quantityText(b.billableQuantity) + ' × ' + b.unitPrice + ' = ' + b.amount);
    } else if (b.model === 'package') {
      out.push(b.packages + ' package(s) of ' + quantityText(b.packageSize) + ' × ' + b.packagePrice + ' = ' + b.amount);
    } else if (b.model === 'percentage') {
      out.push(b.eventCount + ' event(s), ' + b.rate + ' of ' + b.valueTotal + ' = ' + b.amount);
    } else if (line.kind === 'credit') {
      out.push('Included credit ' + b.bucket + ': ' + b.applied + ' used, ' + b.remaining + ' left');
    } else if (line.kind === 'commitment_true_up') {
      out.push('Minimum ' + b.minimumCommitment + ', usage ' + b.usageTotal + ', shortfall ' + b.shortfall);
    }
    return out;
  }

  function renderHeader(me, subscription) {
    $('customer-name').textContent = me.customer.name;
    const plan = subscription.plan;
    const fee = plan.flat_fee !== undefined ? ' · plan fee ' + money(plan.flat_fee, plan.currency) + ' per period' : '';
    $('plan-summary').textContent = plan.name + ' (' + plan.code + ')' + fee + ' · subscription ' + subscription.status;
    const picker = $('subscription-picker');
    const select = $('subscription-select');
    if (me.subscriptions.length > 1) {
      picker.hidden = false;
      if (select.options.length !== me.subscriptions.length) {
        select.replaceChildren(...me.subscriptions.map((s) => {
          const option = el('option', { text: s.plan.name + ' · ' + s.status });
          option.value = s.id;
          return option;
        }));
      }
      select.value = subscription.id;
    }
    $('token-expiry').textContent = me.token.expires_at ? 'This link works until ' + when(me.token.expires_at) + '.' : '';
  }

  function renderSummary(usage, subscription) {
    const currency = usage.currency;
    $('period-range').textContent = when(usage.period.start) + ' → ' + when(usage.period.end);
    setMoney($('usage-total'), usage.projected.usage_total, currency);
    setMoney($('credit-remaining'), usage.projected.credit_remaining, currency);
    setMoney($('projected-subtotal'), usage.projected.subtotal, currency);
    const bucket = subscription.plan.credit_bucket;
    $('credit-detail').textContent = bucket
      ? money(usage.projected.credit_applied, currency) + ' of ' + money(bucket, currency) + ' included credit used.'
      : 'Your plan includes no usage credit.';
  }

  function renderUsageTable(usage, daily) {
    const names = {};
    for (const metric of daily.metrics) names[metric.metric_code] = metric.name;
    const cost = {};
    // A dimensional metric has a line per combination: the API sums them into metric.amount (no money arithmetic here).
    for (const line of usage.projected.lines) if (line.kind === 'usage') cost[line.metricCode] = line.amount;
    for (const metric of usage.usage) if (metric.amount !== undefined) cost[metric.metric_code] = metric.amount;
    const rows = usage.usage.map((metric) =>
      el('tr', { data: { metric: metric.metric_code } }, [
        el('th', { text: names[metric.metric_code] || metric.metric_code, className: 'metric-name' }),
        el('td', { className: 'num quantity', text: quantityText(metric.quantity), data: { quantity: metric.quantity } }),
        el('td', { className: 'num events', text: quantityText(String(metric.event_count)) }),
        cost[metric.metric_code] !== undefined ? moneyCell(cost[metric.metric_code], usage.currency, 'cost') : el('td', { className: 'num cost', text: '—' }),
      ]),
    );
    replaceRows($('usage-table').tBodies[0], rows);
    $('no-usage').hidden = rows.length > 0;
  }

  function renderProjected(usage, subscription, daily) {
    const names = {};
    for (const metric of daily.metrics) names[metric.metric_code] = metric.name;
    const rows = [];
    for (const line of usage.projected.lines) {
      // A charge without a display name is described by its metric code; the metric's name reads better.
      const description = line.kind === 'usage' && line.description === line.metricCode && names[line.metricCode] ? names[line.metricCode] : line.description;
      rows.push(
        el('tr', { className: 'line', data: { kind: line.kind } }, [
          el('td', { text: description }),
          el('td', { className: 'num', text: quantityText(line.quantity) }),
          moneyCell(line.amount, usage.currency),
        ]),
      );
      for (const text of breakdownText(line)) {
        rows.push(el('tr', { className: 'breakdown' }, [el('td', { text, colSpan: 3 })]));
      }
    }
    if (rows.length === 0) rows.push(el('tr', {}, [el('td', { text: 'No usage charges so far.', colSpan: 3, className: 'muted' })]));
    replaceRows($('projected-lines').tBodies[0], rows);
    setMoney($('projected-total'), usage.projected.subtotal, usage.currency);
    // The fee the invoice billing this usage bills (projected.fee: the plan in force then, none on a closing invoice),
    // not the plan's today: shown fee + projected total is that invoice's total. Older answers lack it.
    const plan = subscription.plan;
    const fee = usage.projected.fee !== undefined ? usage.projected.fee : plan.flat_fee;
    const note = $('flat-fee-note');
    note.hidden = !fee || /^0(\.0+)?$/.test(fee);
    const discounted = usage.projected.lines.some((line) => line.kind === 'discount');
    note.textContent =
      'The same invoice bills your plan fee of ' + money(fee, usage.currency || plan.currency) + ' in advance for the next period' +
      (discounted ? ': the discount line above is taken off the fee and the usage together.' : '.');
  }

  function renderInvoices(invoices) {
    const rows = invoices.data.map((invoice) => {
      const credit = invoice.kind === 'credit_note';
      const shown = credit ? negated(invoice.total) : invoice.total;
      return el('tr', { data: { invoiceId: invoice.id, kind: invoice.kind } }, [
        el('td', { className: 'number', text: invoice.number || '—' }),
        el('td', { text: KIND_LABELS[invoice.kind] || invoice.kind }),
        el('td', { text: when(invoice.period_start) + ' → ' + when(invoice.period_end) }),
        el('td', { className: 'status status-' + invoice.status, text: STATUS_LABELS[invoice.status] || invoice.status }),
        el('td', { className: 'num total', text: money(shown, invoice.currency), data: { amount: invoice.total, currency: invoice.currency } }),
      ]);
    });
    replaceRows($('invoices-table').tBodies[0], rows);
    $('invoices-table').hidden = rows.length === 0;
    $('no-invoices').hidden = rows.length > 0;
  }

  const GRANT_LABELS = { purchased: 'Purchased', promotional: 'Promotional', plan_included: 'Included with your plan', goodwill: 'Goodwill' };

  /** The prepaid wallet (docs/wallets.md), when the customer has one: available balance, grants, recent ledger. */
  function renderWallet(wallet) {
    $('wallet').hidden = !wallet.has_wallet;
    if (!wallet.has_wallet) return;
    const currency = wallet.currency;
    setMoney($('wallet-available'), wallet.available, currency);
    $('wallet-detail').textContent =
      'available now: ' + money(wallet.balance, currency) + ' balance, ' + money(wallet.pending_usage, currency) + ' of usage this period not yet invoiced.';
    $('wallet-run-out').textContent = wallet.projected_run_out_at
      ? 'At this period\'s rate it runs out around ' + when(wallet.projected_run_out_at) + '.'
      : '';
    replaceRows(
      $('wallet-grants').tBodies[0],
      wallet.grants.map((grant) =>
        el('tr', { data: { grantId: grant.id } }, [
          el('td', { text: GRANT_LABELS[grant.source] || grant.source }),
          el('td', { text: grant.expires_at ? when(grant.expires_at) : 'never' }),
          moneyCell(grant.remaining, currency),
        ]),
      ),
    );
    replaceRows(
      $('wallet-ledger').tBodies[0],
      wallet.ledger.map((entry) =>
        el('tr', { data: { kind: entry.kind } }, [
          el('td', { text: when(entry.created_at) }),
          el('td', { text: entry.description || entry.kind }),
          moneyCell(entry.amount, currency),
          moneyCell(entry.balance_after, currency),
        ]),
      ),
    );
  }

  /** One bar chart per metric, drawn as inline SVG: a bar per UTC day, its height scaled to the busiest day. */
  function renderCharts(daily) {
    const charts = daily.metrics.map((metric) => {
      const width = 640;
      const height = 180;
      const left = 8;
      const bottom = 26;
      const top = 22;
      const values = metric.days.map((day) => Number(day.quantity));
      const peak = Math.max(0, ...values.filter((value) => Number.isFinite(value)));
      const slot = (width - left * 2) / Math.max(1, metric.days.length);
      const barWidth = Math.max(2, Math.min(48, slot * 0.7));
      const chart = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img', class: 'chart', 'aria-label': metric.name + ' per day' });
      chart.appendChild(svg('title', {}, metric.name + ' per day (' + metric.aggregation + ')'));
      chart.appendChild(svg('line', { x1: left, y1: height - bottom, x2: width - left, y2: height - bottom, class: 'axis' }));
      const labelEvery = Math.ceil(metric.days.length / 8);
      metric.days.forEach((day, index) => {
        const value = values[index];
        const barHeight = peak > 0 && Number.isFinite(value) ? Math.max(value > 0 ? 1 : 0, ((height - bottom - top) * value) / peak) : 0;
        const x = left + slot * index + (slot - barWidth) / 2;
        const bar = svg('rect', {
          x: x.toFixed(2),
          y: (height - bottom - barHeight).toFixed(2),
          width: barWidth.toFixed(2),
          height: barHeight.toFixed(2),
          class: 'bar',
          'data-date': day.date,
          'data-quantity': day.quantity,
        });
        bar.appendChild(svg('title', {}, day.date + ': ' + quantityText(day.quantity) + ' (' + day.event_count + ' events)'));
        chart.appendChild(bar);
        if (value > 0 && value === peak) {
          chart.appendChild(svg('text', { x: (x + barWidth / 2).toFixed(2), y: (height - bottom - barHeight - 4).toFixed(2), class: 'value', 'text-anchor': 'middle' }, quantityText(day.quantity)));
        }
        if (index % labelEvery === 0 || index === metric.days.length - 1) {
          chart.appendChild(svg('text', { x: (x + barWidth / 2).toFixed(2), y: height - 6, class: 'day', 'text-anchor': 'middle' }, day.date.slice(5)));
        }
      });
      return el('figure', { className: 'chart-figure', data: { metric: metric.metric_code } }, [
        el('figcaption', { text: metric.name + ' · ' + metric.aggregation + ' per day' }),
        chart,
      ]);
    });
    $('daily-charts').replaceChildren(...(charts.length ? charts : [el('p', { className: 'muted', text: 'No metered usage on your plan.' })]));
  }

  // ------------------------------------------------------------------------------------------------------------
  // States.

  const ERROR_TEXT = {
    no_token: ['This page needs your personal link', 'Open the usage link you were given; it ends with #token=…'],
    unauthenticated: ['This link is not valid', 'Ask for a new usage link.'],
    api_key_expired: ['This link has expired', 'Usage links are short-lived on purpose. Ask for a new one.'],
    api_key_revoked: ['This link was revoked', 'Ask for a new usage link.'],
    forbidden: ['This link cannot show that', 'The link only gives access to your own usage.'],
    subscription_not_found: ['Subscription not found', 'There is no such subscription for your account.'],
    no_subscription: ['No subscription yet', 'Your account has no subscription to show.'],
  };

  function showError(code, detail) {
    const [title, hint] = ERROR_TEXT[code] || ['Could not load your usage', 'Please try again in a moment.'];
    document.body.dataset.state = 'error';
    $('error').dataset.code = code || 'unknown';
    $('error-title').textContent = title;
    $('error-detail').textContent = hint + (detail && !ERROR_TEXT[code] ? ' (' + detail + ')' : '');
    $('error').hidden = false;
    $('content').hidden = true;
    $('refresh-status').textContent = '';
  }

  /** Errors after which polling is pointless: the link is wrong, not the network. */
  const FINAL_CODES = new Set(['unauthenticated', 'api_key_expired', 'api_key_revoked', 'forbidden', 'subscription_not_found', 'no_subscription', 'customer_not_found', 'not_found']);

  // ------------------------------------------------------------------------------------------------------------
  // The refresh loop.

  function start() {
    $('refresh-seconds').textContent = String(REFRESH_SECONDS);
    const fragment = readFragment();
    if (!fragment.token) {
      showError('no_token');
      return;
    }
    const token = fragment.token;
    let chosen = fragment.subscriptionId;
    let timer = null;
    let loadedOnce = false;
    let refreshes = 0;

    $('subscription-select').addEventListener('change', (event) => {
      chosen = event.target.value;
      rememberSubscription(chosen);
      schedule(0);
    });

    async function refresh() {
      const me = await api(token, '/v1/usage-token/me');
      const subscriptionId = chosen || (me.subscriptions[0] && me.subscriptions[0].id);
      if (!subscriptionId) throw new ApiError(404, 'no_subscription');
      const base = '/v1/subscriptions/' + encodeURIComponent(subscriptionId);
      const wallet = api(token, '/v1/customers/' + encodeURIComponent(me.customer.id) + '/wallet');
      const [usage, daily, invoices, walletView] = await Promise.all([api(token, base + '/usage'), api(token, base + '/usage/daily'), api(token, base + '/invoices'), wallet]);
      // The API answered for this subscription, so it is the token's; /me lists it unless it is brand new.
      const subscription = me.subscriptions.find((s) => s.id === subscriptionId) || me.subscriptions[0];
      renderHeader(me, subscription);
      if (usage.period) {
        renderSummary(usage, subscription);
        renderUsageTable(usage, daily);
        renderProjected(usage, subscription, daily);
        $('projected-lines').hidden = false;
      } else {
        $('period-range').textContent = 'The subscription has no open billing period.';
      }
      renderCharts(daily);
      renderInvoices(invoices);
      renderWallet(walletView);
      $('error').hidden = true;
      $('content').hidden = false;
      refreshes += 1;
      document.body.dataset.state = 'ready';
      document.body.dataset.refreshes = String(refreshes);
      document.body.dataset.subscriptionId = subscriptionId;
      $('refresh-status').textContent = 'Updated ' + (usage.as_of || new Date().toISOString()).slice(11, 19) + ' UTC';
      loadedOnce = true;
    }

    let stopped = false;
    let inFlight = false;
    let again = false;

    function schedule(delayMs) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(tick, delayMs);
    }

    async function tick() {
      timer = null;
      // Nobody is looking: check again when the tab is shown (visibilitychange below). One refresh at a time.
      if (inFlight) again = true; // e.g. another subscription was picked mid-refresh
      if (stopped || inFlight || document.hidden) return;
      inFlight = true;
      try {
        await refresh();
      } catch (error) {
        const code = error instanceof ApiError ? error.code : 'unknown';
        if (FINAL_CODES.has(code)) {
          stopped = true; // no more polling: a new link is needed
          showError(code, error.message);
        } else if (loadedOnce) {
          $('refresh-status').textContent = 'Could not refresh (' + (error.message || 'error') + '); retrying…';
        } else {
          showError(code, error.message);
        }
      } finally {
        inFlight = false;
      }
      if (!stopped) schedule(again ? 0 : REFRESH_SECONDS * 1000);
      again = false;
    }

    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && timer === null && !inFlight && !stopped) schedule(0);
    });
    schedule(0);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();

import { badRequest, forbidden } from '../core/errors';
import { jsonResponse } from '../core/http';
import { Handler } from '../gateway/route';
import { utcDay } from '../limits/windows';

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * GET /v1/usage?date=YYYY-MM-DD (admin keys only): for that UTC day (today
 * when no date is given), per key name and model, the requests and the input
 * and output tokens every instance served. Key names only, never a key.
 */
export const usageReport: Handler = async (req, gateway, ctx) => {
  if (!ctx.key?.admin) throw forbidden('This key may not read usage: GET /v1/usage needs a key with "admin": true in PROXY_KEYS.');
  const asked = new URLSearchParams(req.query).get('date');
  const today = utcDay(gateway.now());
  const date = asked ?? today;
  const start = Date.parse(`${date}T00:00:00Z`);
  if (!DATE.test(date) || Number.isNaN(start) || utcDay(start) !== date) {
    throw badRequest(`The date "${date.slice(0, 32)}" is not a day; give one as YYYY-MM-DD, e.g. ?date=${today}.`, 'date', 'invalid_date');
  }
  const { source, rows } = await gateway.limits.report(date);
  return jsonResponse(200, {
    object: 'list',
    date,
    source,
    data: rows.map((r) => ({ object: 'usage', key: r.key, model: r.model, requests: r.requests, input_tokens: r.inputTokens, output_tokens: r.outputTokens })),
  }, { 'cache-control': 'no-store' });
};

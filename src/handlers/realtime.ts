import { readJsonObject } from '../bodies/body';
import { badRequest, notSetUp } from '../core/errors';
import { GatewayRequest, jsonResponse } from '../core/http';
import { Gateway, RealtimeSessions } from '../gateway/gateway';
import { Handler } from '../gateway/route';
import { RequestContext } from '../gateway/context';
import { requireRealtimeModel } from '../realtime/upstream';
import { realtimeForm } from '../azure-openai/wire';
import { admit } from './forward';

/** How long a session token from POST /v1/realtime/sessions lasts. */
const SESSION_TOKEN_SECONDS = 300;

const NO_WEB_PUBSUB = 'Realtime sessions need Azure Web PubSub, which this gateway has not been given (WEBPUBSUB_CONNECTION_STRING).';

function sessionsOf(gateway: Gateway, req: GatewayRequest): RealtimeSessions {
  if (gateway.realtime !== undefined) return gateway.realtime;
  if (!gateway.directRealtime) throw notSetUp(NO_WEB_PUBSUB);
  // The direct socket is on the address the client just used, whatever its port.
  const host = req.header('host');
  throw notSetUp(`${NO_WEB_PUBSUB} Locally, connect to ws://${host && /^[\w.:[\]-]+$/.test(host) ? host : 'localhost'}/v1/realtime instead.`);
}

/**
 * POST /v1/realtime/sessions: OpenAI's (beta) session object, whose
 * `client_secret.value` is the token a client connects with, plus `url`, the
 * Web PubSub address to connect to (the token already in it).
 */
export const realtimeSessions: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  ctx.model = typeof value.model === 'string' ? value.model : undefined;
  // client_secret configures the token; everything else but the model is the session's settings (instructions, voice, tools, ...).
  const { model: _model, client_secret: clientSecret, ...settings } = value;
  const seconds = tokenSeconds((clientSecret as { expires_after?: unknown } | undefined)?.expires_after, SESSION_TOKEN_SECONDS, 'client_secret.expires_after.seconds');
  const sessions = await admitSession(gateway, ctx, req, value.model, () => requireForm(gateway, ctx, value.model as string, settings, 'preview'));
  const s = await sessions.start(value.model, seconds, ctx.key, settings);
  return jsonResponse(200, {
    id: s.sessionId, object: 'realtime.session', model: s.model, ...settings, expires_at: s.expiresAt,
    client_secret: { value: s.token, expires_at: s.expiresAt }, url: s.url,
  });
};

/**
 * POST /v1/realtime/client_secrets: GA's form of the same, `{ expires_after?,
 * session?: { type: "realtime", model } }` in, `{ value, expires_at, session }`
 * out, with `url` beside them. Tokens last whole minutes, so `expires_at` says
 * when this one really expires.
 */
export const realtimeClientSecrets: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const session = (value.session ?? {}) as Record<string, unknown>;
  if (typeof session !== 'object' || Array.isArray(session)) throw badRequest('`session` must be an object.', 'session', 'invalid_type');
  if (session.type !== undefined && session.type !== 'realtime') throw badRequest('Only `session.type` "realtime" is served.', 'session.type', 'invalid_value');
  const seconds = tokenSeconds(value.expires_after, 600, 'expires_after.seconds');
  ctx.model = typeof session.model === 'string' ? session.model : undefined;
  // The rest of the session object (instructions, audio, tools, ...) is applied once the client connects.
  const { type: _type, model: _model, ...settings } = session;
  const sessions = await admitSession(gateway, ctx, req, session.model, () => requireForm(gateway, ctx, session.model as string, settings, 'ga'));
  const s = await sessions.start(session.model, seconds, ctx.key, settings);
  return jsonResponse(200, {
    value: s.token, expires_at: s.expiresAt,
    session: { type: 'realtime', object: 'realtime.session', id: s.sessionId, model: s.model, ...settings, expires_at: s.expiresAt },
    url: s.url,
  });
};

/** How long a token lasts: `expires_after.seconds`, a whole number from 10 to 7200, else `fallback`. */
function tokenSeconds(expiresAfter: unknown, fallback: number, param: string): number {
  const seconds = (expiresAfter as { seconds?: unknown } | undefined)?.seconds ?? fallback;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 10 || seconds > 7200) {
    throw badRequest(`\`${param}\` must be a whole number from 10 to 7200.`, param, 'invalid_value');
  }
  return seconds;
}

/**
 * Settings are sent to Azure as given, so they must be in the protocol the
 * model's deployments speak: the beta endpoint's in the preview one (a dated
 * apiVersion), GA's session object in GA's. The two name the same settings
 * differently (voice, audio.output.voice), and Azure refuses the other's.
 */
function requireForm(gateway: Gateway, ctx: RequestContext, model: string, settings: Record<string, unknown>, form: 'ga' | 'preview'): void {
  if (Object.keys(settings).length === 0) return;
  if (gateway.pool(model, ctx.key).every((d) => realtimeForm(d) === form)) return;
  throw badRequest(form === 'preview'
    ? 'This model\'s deployments speak Azure\'s GA realtime protocol, whose session settings are not the beta ones given here. Create the session with POST /v1/realtime/client_secrets and GA\'s session object, or with only `model`, and send the settings in a session.update once connected.'
    : 'This model\'s deployments speak Azure\'s preview realtime protocol (a dated apiVersion), whose session settings are not GA\'s given here. Create the session with POST /v1/realtime/sessions and the beta settings, or with only `session.model`, and send the settings in a session.update once connected.',
  form === 'preview' ? Object.keys(settings)[0] : `session.${Object.keys(settings)[0]}`, 'unsupported_parameter');
}

/**
 * A session is one request on the key's limits (its tokens count as its
 * responses finish). What the client must fix comes first (a model that is not
 * a realtime one, or that the key may not use; then `check`, its settings),
 * then whether sessions are set up here at all; only a session that can start
 * takes from the limits.
 */
async function admitSession(gateway: Gateway, ctx: RequestContext, req: GatewayRequest, model: unknown, check: () => void): Promise<RealtimeSessions> {
  const realtimeModel = requireRealtimeModel(gateway, model, ctx.key);
  check();
  const sessions = sessionsOf(gateway, req);
  await admit(gateway, ctx, realtimeModel);
  return sessions;
}

/** /realtime/events: where Web PubSub posts the sessions' events. */
export const realtimeEvents: Handler = (req, gateway) => sessionsOf(gateway, req).handleEvent(req);

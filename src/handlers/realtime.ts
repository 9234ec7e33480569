import { readJsonObject } from '../bodies/body';
import { unavailable } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { Handler } from '../gateway/route';
import { RealtimeHub } from '../realtime/hub';

const hubs = new WeakMap<Gateway, RealtimeHub>();

const NO_WEB_PUBSUB = 'Realtime sessions need Azure Web PubSub, which this gateway has not been given (WEBPUBSUB_CONNECTION_STRING).';

/** The gateway's Web PubSub bridge, made at first use. */
export function realtimeHubOf(gateway: Gateway): RealtimeHub {
  let hub = hubs.get(gateway);
  if (hub === undefined) {
    const settings = gateway.config.webPubSub;
    if (settings === undefined) {
      throw unavailable(NO_WEB_PUBSUB);
    }
    hub = new RealtimeHub(gateway, settings);
    hubs.set(gateway, hub);
    const made = hub;
    gateway.onClose(() => made.close());
  }
  return hub;
}

/** POST /v1/realtime/sessions: a Web PubSub client URL for a new session. */
export const realtimeSessions: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  ctx.model = typeof value.model === 'string' ? value.model : undefined;
  if (gateway.config.webPubSub === undefined && gateway.directRealtime) {
    // The direct socket is on the address the client just used, whatever its port.
    const host = req.header('host');
    throw unavailable(`${NO_WEB_PUBSUB} Locally, connect to ws://${host && /^[\w.:[\]-]+$/.test(host) ? host : 'localhost'}/v1/realtime instead.`);
  }
  return realtimeHubOf(gateway).startSession(value.model, ctx.key);
};

/** /realtime/events: where Web PubSub posts the sessions' events. */
export const realtimeEvents: Handler = (req, gateway) => realtimeHubOf(gateway).handle(req);

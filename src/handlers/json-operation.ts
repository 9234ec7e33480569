import { promptCacheKey, readJsonObject, requestModel } from '../bodies/body';
import { modelRewriter } from '../bodies/json-model';
import { Deployment } from '../azure-openai/deployment';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { AzureEventFilter } from '../bodies/sse';
import { acceptsStreamOptions, usesModelField } from '../azure-openai/wire';
import { clientAskedForUsage, withStreamUsage } from '../bodies/stream-usage';
import { forward, passThrough, through } from './forward';
import { Handler } from '../gateway/route';
import { estimateTokens } from '../limits/estimate';

/**
 * A JSON operation that Azure serves per deployment (chat, completions,
 * embeddings). The client's bytes are forwarded as they came; only the v1
 * upstream form, which names the deployment in `model`, needs a rewrite, and
 * a chat stream whose client did not ask for usage: the gateway asks for it,
 * to count the tokens, and keeps it from the client. The already-parsed body
 * also gives the prompt-cache key, for models that route by it.
 */
export function jsonOperation(operation: string): Handler {
  return async (req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> => {
    const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
    const model = requestModel(req, value);
    const withModel = modelRewriter(raw);
    const streamed = value.stream === true;
    const clientWantsUsage = clientAskedForUsage(value);
    // Completions are left alone: whether Azure takes stream_options there is undocumented, and an unknown argument is a 400.
    const withUsage = streamed && !clientWantsUsage && operation === 'chat/completions' ? withStreamUsage(raw, value) : undefined;
    const withUsageAndModel = withUsage === undefined ? undefined : modelRewriter(withUsage);
    const body = (d: Deployment): Buffer => {
      const askUsage = withUsage !== undefined && acceptsStreamOptions(d);
      if (usesModelField(d)) return askUsage ? withUsageAndModel!(d.deployment) : withModel(d.deployment);
      return askUsage ? withUsage : raw;
    };
    return forward(req, gateway, ctx, model, {
      operation,
      contentType: 'application/json',
      accept: streamed ? 'text/event-stream' : 'application/json',
      affinityKey: promptCacheKey(value),
      estimate: estimateTokens(raw, value),
      body,
      respond: (reply): GatewayResponse | Promise<GatewayResponse> => {
        const type = reply.headers['content-type'] ?? 'application/json';
        if (type.startsWith('text/event-stream')) {
          ctx.streamedEvents = 0;
          const events = new AzureEventFilter({
            onUsage: (u) => (ctx.usage = u),
            onEvent: () => {
              ctx.streamedEvents! += 1;
            },
            // Only what the gateway asked for itself is kept from the client.
            clientWantsUsage: withUsage === undefined || clientWantsUsage,
            // An image stream's usage comes with each finished image (OpenAI's image streaming events).
            usageEvent: operation === 'images/generations' ? 'image_generation.completed' : undefined,
          });
          return {
            status: reply.status,
            headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
            body: through(reply, events, (error) => {
              ctx.errorCode = error.code ?? error.type;
              events.endWithEvent(error.toServerSentEvent());
            }),
          };
        }
        return passThrough(reply, ctx);
      },
    });
  };
}

import { promptCacheKey, readJsonObject, requestModel } from '../bodies/body';
import { modelRewriter } from '../bodies/json-model';
import { Deployment } from '../azure-openai/deployment';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { AzureEventFilter } from '../bodies/sse';
import { usesModelField } from '../azure-openai/wire';
import { forward, passThrough, through } from './forward';
import { Handler } from '../gateway/route';
import { estimateTokens } from '../limits/estimate';

/**
 * A JSON operation that Azure serves per deployment (chat, completions,
 * embeddings). The client's bytes are forwarded as they came; only the v1
 * upstream form, which names the deployment in `model`, needs a rewrite. The
 * already-parsed body also gives the prompt-cache key, for models that route
 * by it.
 */
export function jsonOperation(operation: string): Handler {
  return async (req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> => {
    const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
    const model = requestModel(req, value);
    const withModel = modelRewriter(raw);
    const streamed = value.stream === true;
    return forward(req, gateway, ctx, model, {
      operation,
      contentType: 'application/json',
      accept: streamed ? 'text/event-stream' : 'application/json',
      affinityKey: promptCacheKey(value),
      estimate: estimateTokens(raw.length, value),
      body: (d: Deployment) => (usesModelField(d) ? withModel(d.deployment) : raw),
      respond: (reply): GatewayResponse | Promise<GatewayResponse> => {
        const type = reply.headers['content-type'] ?? 'application/json';
        if (type.startsWith('text/event-stream')) {
          const events = new AzureEventFilter((u) => (ctx.usage = u));
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

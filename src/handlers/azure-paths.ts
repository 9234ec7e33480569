import { openAIPathOf } from '../azure-openai/wire';
import { clip, methodNotAllowed, notFound } from '../core/errors';
import { Handler, Route, takesMethod } from '../gateway/route';
import { Router } from '../gateway/router';
import { unservedOperation } from './unmatched';

/**
 * The gateway's routes under Azure's paths, for clients built for Azure:
 * /openai/deployments/{model}/{operation}?api-version=… (AzureOpenAI, where
 * {model} is one of the gateway's models, balanced across its pool),
 * /openai/v1/{operation} (OpenAI({ baseURL: <gateway>/openai/v1 })) and the
 * dated /openai/responses… and /openai/models. Each is served by the route it
 * stands for, so the answer is the same whichever path reached it.
 */
export function azurePaths(targets: readonly Route[]): Handler {
  const router = new Router(targets);
  return async (req, gateway, ctx) => {
    const target = openAIPathOf(req.params.operation ?? '');
    const match = target === undefined ? undefined : router.match(target.path);
    if (target === undefined || match === undefined) {
      const unserved = target === undefined ? undefined : unservedOperation(req.method, target.path, req.path);
      if (unserved !== undefined) throw unserved;
      throw notFound(`Unknown request URL: ${req.method} ${clip(req.path)}. Azure-style paths are /openai/deployments/{model}/{operation}, /openai/v1/{operation} and /openai/responses.`, 'unknown_url');
    }
    if (!takesMethod(match.route, req.method)) throw unservedOperation(req.method, target.path, req.path) ?? methodNotAllowed(req.method, match.route.methods);
    ctx.route = match.route.name;
    // The deployment segment names one of the gateway's models: it wins over any `model` in the body.
    const params = target.deployment === undefined ? match.params : { ...match.params, model: target.deployment };
    return match.route.handler({ ...req, params }, gateway, ctx);
  };
}

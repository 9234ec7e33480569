import { GatewayError, clip, methodNotAllowed, notFound } from '../core/errors';
import { Handler, Route } from '../gateway/route';
import { Router } from '../gateway/router';

/**
 * The parts of OpenAI's API that the gateway does not serve, by the path each
 * lives under: a client calling one is pointed right, and must not be told to
 * check a base URL that is fine, nor, where a route's template also fits the
 * path (as if `input_tokens` were a response's id), to use another method.
 * An entry ending in `/` stands for the paths below it only: stored chat
 * completions live under /v1/chat/completions/{id}, below a path the gateway
 * serves. (Image variations need DALL·E 2, which Azure does not offer.)
 */
const UNSERVED = [
  '/v1/responses/input_tokens', '/v1/responses/compact',
  '/v1/moderations', '/v1/files', '/v1/uploads', '/v1/batches', '/v1/fine_tuning', '/v1/assistants', '/v1/threads',
  '/v1/vector_stores', '/v1/conversations', '/v1/evals', '/v1/containers', '/v1/videos', '/v1/organization',
  '/v1/chatkit', '/v1/realtime/calls', '/v1/realtime/transcription_sessions', '/v1/images/variations', '/v1/chat/completions/',
];

function isUnserved(path: string): boolean {
  return UNSERVED.some((p) => path.startsWith(p) && (p.endsWith('/') || path.length === p.length || path[p.length] === '/'));
}

/** A path as the known ones are spelt: lower case, without a trailing slash. */
function normalised(path: string): string {
  return (path.endsWith('/') ? path.slice(0, -1) : path).toLowerCase();
}

/** The 404 for an OpenAI operation the gateway does not serve, at its OpenAI path (`shown`: the path as the client sent it). */
export function unservedOperation(method: string, path: string, shown = path): GatewayError | undefined {
  return isUnserved(normalised(path)) ? notFound(`${method} ${clip(shown)} is an OpenAI operation this gateway does not serve.`, 'unknown_url') : undefined;
}

/** Why no route takes a request: its path names none (404), or the route it names takes other methods (405). */
export function refusalFor(router: Router, method: string, path: string): GatewayError {
  const match = router.match(path);
  const unserved = unservedOperation(method, path);
  if (unserved !== undefined) return unserved;
  // OpenAI's realtime WebSocket address: here a session starts with a request that gives the address to connect to.
  if (normalised(path) === '/v1/realtime') return notFound('Realtime sessions start with POST /v1/realtime/client_secrets (or /v1/realtime/sessions), whose answer gives the WebSocket URL to connect to.', 'unknown_url');
  if (match === undefined) return notFound(`Unknown request URL: ${method} ${clip(path)}. Check the path (the base URL should end in /v1).`, 'unknown_url');
  return methodNotAllowed(method, match.route.methods);
}

/**
 * The handler of the catch-all route, for the requests the table's other
 * routes (`others`, read at the first request) do not take.
 */
export function unmatched(others: () => readonly Route[]): Handler {
  let router: Router | undefined;
  return async (req) => {
    router ??= new Router(others());
    throw refusalFor(router, req.method, req.path);
  };
}

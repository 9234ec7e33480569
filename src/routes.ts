import { HttpMethod, Route } from './gateway/route';
import { audioSpeech, audioUpload } from './handlers/audio';
import { health } from './handlers/health';
import { realtimeClientSecrets, realtimeEvents, realtimeSessions } from './handlers/realtime';
import { deploymentsHealth } from './handlers/deployments';
import { jsonOperation } from './handlers/json-operation';
import { listModels, retrieveModel } from './handlers/models';
import { cancelResponse, createResponse, listResponseInputItems, responseById } from './handlers/responses';
import { imageEdits, imageGenerations } from './handlers/images';
import { azurePaths } from './handlers/azure-paths';
import { usageReport } from './handlers/usage';
import { unmatched } from './handlers/unmatched';

/**
 * GET, and HEAD (RFC 9110, 9.3.2: GET without the body) for the routes uptime
 * monitors and load balancers probe, all of which answer from what the
 * gateway knows: a HEAD that called Azure would spend a key's limits and
 * Azure's time on an answer nobody reads.
 */
const HEAD_TOO = ['GET', 'HEAD'] as const satisfies readonly HttpMethod[];

/** OpenAI's API, at OpenAI's paths. */
const openAI = {
  chatCompletions: { name: 'chatCompletions', methods: ['POST'], route: 'v1/chat/completions', auth: true, handler: jsonOperation('chat/completions') },
  completions: { name: 'completions', methods: ['POST'], route: 'v1/completions', auth: true, handler: jsonOperation('completions') },
  embeddings: { name: 'embeddings', methods: ['POST'], route: 'v1/embeddings', auth: true, handler: jsonOperation('embeddings') },
  listModels: { name: 'listModels', methods: HEAD_TOO, route: 'v1/models', auth: true, handler: listModels },
  retrieveModel: { name: 'retrieveModel', methods: HEAD_TOO, route: 'v1/models/{model}', auth: true, handler: retrieveModel },
  audioTranscriptions: { name: 'audioTranscriptions', methods: ['POST'], route: 'v1/audio/transcriptions', auth: true, handler: audioUpload('audio/transcriptions') },
  audioTranslations: { name: 'audioTranslations', methods: ['POST'], route: 'v1/audio/translations', auth: true, handler: audioUpload('audio/translations') },
  audioSpeech: { name: 'audioSpeech', methods: ['POST'], route: 'v1/audio/speech', auth: true, handler: audioSpeech },
  imageGenerations: { name: 'imageGenerations', methods: ['POST'], route: 'v1/images/generations', auth: true, handler: imageGenerations },
  imageEdits: { name: 'imageEdits', methods: ['POST'], route: 'v1/images/edits', auth: true, handler: imageEdits },
  createResponse: { name: 'createResponse', methods: ['POST'], route: 'v1/responses', auth: true, handler: createResponse },
  responseById: { name: 'responseById', methods: ['GET', 'DELETE'], route: 'v1/responses/{id}', auth: true, handler: responseById },
  cancelResponse: { name: 'cancelResponse', methods: ['POST'], route: 'v1/responses/{id}/cancel', auth: true, handler: cancelResponse },
  listResponseInputItems: { name: 'listResponseInputItems', methods: ['GET'], route: 'v1/responses/{id}/input_items', auth: true, handler: listResponseInputItems },
  realtimeSessions: { name: 'realtimeSessions', methods: ['POST'], route: 'v1/realtime/sessions', auth: true, handler: realtimeSessions },
  realtimeClientSecrets: { name: 'realtimeClientSecrets', methods: ['POST'], route: 'v1/realtime/client_secrets', auth: true, handler: realtimeClientSecrets },
} as const satisfies Record<string, Route>;

/**
 * The route table. The Functions app registers one HTTP function per entry and
 * the local host serves the same entries, so the two can never disagree.
 */
export const routes = {
  ...openAI,
  azurePaths: { name: 'azurePaths', methods: ['GET', 'POST', 'DELETE'], route: 'openai/{*operation}', auth: true, handler: azurePaths(Object.values(openAI)) },
  realtimeEvents: { name: 'realtimeEvents', methods: ['POST', 'OPTIONS'], route: 'realtime/events', auth: false, handler: realtimeEvents, logSuccess: false },
  usage: { name: 'usage', methods: HEAD_TOO, route: 'v1/usage', auth: true, handler: usageReport },
  health: { name: 'health', methods: HEAD_TOO, route: 'health', auth: false, handler: health },
  deploymentsHealth: { name: 'deploymentsHealth', methods: HEAD_TOO, route: 'health/deployments', auth: true, handler: deploymentsHealth },
  /**
   * Any other request under v1/. The Functions host answers a path no
   * function takes (or a method its route does not) with its own empty 404;
   * this answers them in OpenAI's shape instead (404 unknown_url, or 405 with
   * Allow), as the local host does. It must be tried after every other route:
   * the host tries routes in the order of their functions' names, not by how
   * specific they are (Azure/azure-functions-host#9876), hence a name that
   * sorts last; the local host tries templates in this table's order.
   */
  unmatchedV1: { name: 'zzUnmatchedV1', methods: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'], route: 'v1/{*path}', auth: false, handler: unmatched(() => otherRoutes()) },
} as const satisfies Record<string, Route>;

function otherRoutes(): readonly Route[] {
  return routeTable.filter((r) => r !== routes.unmatchedV1);
}

export type RouteName = keyof typeof routes;

export const routeTable: readonly Route[] = Object.values(routes);

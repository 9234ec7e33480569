import https from 'node:https';
import type { PipelineRequest, PipelineResponse, SendRequest } from '@azure/core-rest-pipeline';

/** Client options that make an Azure SDK client trust an extra certificate authority (a test's). */
export function tlsOptions(serviceTls: { readonly ca: Buffer } | undefined): { additionalPolicies?: { position: 'perCall'; policy: { name: string; sendRequest: (r: PipelineRequest, next: SendRequest) => Promise<PipelineResponse> } }[] } {
  if (!serviceTls) return {};
  const agent = new https.Agent({ ca: serviceTls.ca, keepAlive: true });
  return { additionalPolicies: [{ position: 'perCall', policy: { name: 'service-tls', sendRequest: (r, next) => ((r.agent = agent), next(r)) } }] };
}

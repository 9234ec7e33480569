import { randomBytes } from 'node:crypto';
import { usesModelField } from '../azure-openai/wire';
import { MultipartForm, encodeMultipart } from '../bodies/multipart';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { forward, passThrough } from './forward';

/**
 * Forwards a client's multipart upload, every field and file kept, re-encoded
 * once for Azure (the files' chunks are reused, not copied) and replayed as
 * is if a deployment fails over; the v1 form gets the deployment as `model`.
 * Like forward, it may throw rather than reject: call it from an async function.
 */
export function forwardUpload(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, model: string, operation: string, form: MultipartForm): Promise<GatewayResponse> {
  const boundary = `gateway-${randomBytes(12).toString('hex')}`;
  const plain = encodeMultipart(form, boundary);
  return forward(req, gateway, ctx, model, {
    operation,
    contentType: `multipart/form-data; boundary=${boundary}`,
    body: (d) => (usesModelField(d) ? encodeMultipart(form, boundary, { model: d.deployment }) : plain),
    respond: (reply) => passThrough(reply, ctx),
  });
}

/** @module Every setting the gateway reads, declared once. */
/**
 * Every setting the gateway reads, declared once. Configuration parsing, the
 * local settings example, /health and the deployment template's tests all
 * take their list from here, so a new setting cannot be forgotten by one of them.
 */
export interface SettingSpec {
  readonly name: string;
  readonly description: string;
  /** Holds a secret: never echoed in messages, logs or /health. */
  readonly secret?: boolean;
  /** May be left unset in a deployment to Azure. */
  readonly optional: boolean;
}

export const SETTINGS = [
  { name: 'PROXY_API_KEY', description: 'Comma-separated keys clients may use (Bearer or api-key header); unnamed and unlimited.', secret: true, optional: true },
  { name: 'PROXY_KEYS', description: 'Named keys: JSON array of { name, key | keySha256, models?, rpm?, tpm?, tokensPerDay?, tokensPerMonth?, admin? }.', secret: true, optional: true },
  { name: 'AZURE_OPENAI_ENDPOINT', description: 'Default Azure OpenAI resource, e.g. https://<resource>.openai.azure.com', optional: true },
  { name: 'AZURE_OPENAI_API_KEY', description: 'Key for the default resource; when unset the managed identity is used.', secret: true, optional: true },
  { name: 'AZURE_OPENAI_API_VERSION', description: 'Default api-version sent upstream.', optional: true },
  { name: 'AZURE_OPENAI_URL', description: 'Single-deployment chat URL of the original design; still accepted.', optional: true },
  { name: 'MODEL_DEPLOYMENTS', description: 'JSON: model name -> list of deployments.', optional: true },
  { name: 'MAX_REQUEST_BODY_BYTES', description: 'Largest JSON request body accepted (default 20 MiB).', optional: true },
  { name: 'MAX_IMAGE_UPLOAD_BYTES', description: 'Largest image edit upload, all images and the mask together (default 50 MiB).', optional: true },
  { name: 'MAX_AUDIO_FILE_BYTES', description: 'Largest audio upload accepted (default 25 MiB).', optional: true },
  { name: 'MAX_INFLIGHT_BODY_BYTES', description: 'Most bytes of request bodies an instance holds at once, all requests together (default 256 MiB); beyond it, requests get 503 with Retry-After.', optional: true },
  { name: 'UPSTREAM_HEADERS_TIMEOUT_MS', description: 'How long to wait for an upstream deployment to send response headers before failing over (default 120000).', optional: true },
  { name: 'UPSTREAM_DEADLINE_MS', description: 'How long a request may take, failover included, to the first byte of its answer before the gateway stops trying deployments and answers 504 (default 220000, under the 230 s Azure Functions gives an HTTP answer to start, or UPSTREAM_HEADERS_TIMEOUT_MS if longer).', optional: true },
  { name: 'UPSTREAM_IDLE_TIMEOUT_MS', description: 'Once a deployment has sent its headers, how long the gateway waits for its next byte: before the client has seen any, it fails over; after, it ends the response with an error (default 120000).', optional: true },
  { name: 'UPSTREAM_MAX_RETRY_AFTER_MS', description: 'The longest a deployment is skipped, whatever retry-after Azure sends (default 300000).', optional: true },
  { name: 'UPSTREAM_FAILURE_COOLDOWN_MS', description: 'How long a deployment that failed with 5xx, a timeout or a connection error is skipped (default 10000).', optional: true },
  { name: 'AzureWebJobsStorage', description: 'The Functions storage account; also holds the balancer table unless BALANCER_STORAGE_CONNECTION is set.', secret: true, optional: true },
  { name: 'AzureWebJobsStorage__accountName', description: 'Identity-based form of AzureWebJobsStorage: the storage account name.', optional: true },
  { name: 'BALANCER_STORAGE_CONNECTION', description: 'Storage for the shared round-robin cursor and deployment health (connection string); overrides AzureWebJobsStorage.', secret: true, optional: true },
  { name: 'AzureWebJobsStorage__tableServiceUri', description: 'Identity-based form of AzureWebJobsStorage: the table service URI.', optional: true },
  { name: 'BALANCER_STORAGE_CONNECTION__accountName', description: 'Identity-based form of BALANCER_STORAGE_CONNECTION: the storage account name.', optional: true },
  { name: 'BALANCER_STORAGE_CONNECTION__tableServiceUri', description: 'Identity-based form of BALANCER_STORAGE_CONNECTION: the table service URI.', optional: true },
  { name: 'BALANCER_TABLE', description: 'Table holding the balancer state (default gatewaybalancer).', optional: true },
  { name: 'BALANCER_BLOCK_SIZE', description: 'About how many cursor positions an instance reserves per storage write (default 16).', optional: true },
  { name: 'BALANCER_HEALTH_REFRESH_MS', description: 'How often an instance reads the cooldowns other instances published (default 1000).', optional: true },
  { name: 'BALANCER_STORAGE_TIMEOUT_MS', description: 'Longest a balancer storage call may take before the instance balances alone (default 1000).', optional: true },
  { name: 'LIMITS_SYNC_MS', description: 'How often an instance shares its usage counts and counts the instances that share the limits (default 5000).', optional: true },
  { name: 'KEY_VAULT_URL', description: 'When set, the proxy keys and the Azure OpenAI key are read from this Key Vault with the managed identity.', optional: true },
  { name: 'PROXY_API_KEY_SECRET_NAME', description: 'Key Vault secret holding the proxy keys (default proxy-api-key).', optional: true },
  { name: 'PROXY_KEYS_SECRET_NAME', description: 'Key Vault secret holding the named keys, as PROXY_KEYS (default proxy-keys); absent secret = none.', optional: true },
  { name: 'AZURE_OPENAI_API_KEY_SECRET_NAME', description: 'Key Vault secret holding the Azure OpenAI key (default azure-openai-api-key); absent secret = managed identity.', optional: true },
  { name: 'SECRETS_REFRESH_MS', description: 'How often Key Vault secrets are re-read (default 300000).', optional: true },
  { name: 'AZURE_CLIENT_ID', description: 'Client id of a user-assigned managed identity, when the app uses one.', optional: true },
  { name: 'WEBPUBSUB_CONNECTION_STRING', description: 'Web PubSub for realtime sessions, by connection string.', secret: true, optional: true },
  { name: 'WEBPUBSUB_ENDPOINT', description: 'Web PubSub for realtime sessions, reached with the managed identity (no key).', optional: true },
  { name: 'WEBPUBSUB_EVENT_AUDIENCE', description: 'With WEBPUBSUB_ENDPOINT: the audience of the Entra ID token Web PubSub sends with each event.', optional: true },
  { name: 'WEBPUBSUB_EVENT_PRINCIPAL_ID', description: 'With WEBPUBSUB_ENDPOINT: the object (or client) id of Web PubSub\'s managed identity; event tokens from any other principal are refused.', optional: true },
  { name: 'WEBPUBSUB_CONNECTION_STRING_SECRET_NAME', description: 'With KEY_VAULT_URL: the secret holding the Web PubSub connection string, re-read so a rotated key takes effect without a restart (default webpubsub-connection-string).', optional: true },
  { name: 'REALTIME_LEASE_MS', description: 'How long a realtime session outlives its owning instance before another resumes it (default 6000; renewed every third of it).', optional: true },
  { name: 'WEBPUBSUB_EVENT_ISSUER', description: 'With WEBPUBSUB_ENDPOINT: the token issuers accepted, comma-separated (default the tenant\'s v1 and v2 issuers: https://sts.windows.net/<AZURE_TENANT_ID>/ and https://login.microsoftonline.com/<AZURE_TENANT_ID>/v2.0).', optional: true },
  { name: 'AZURE_TENANT_ID', description: 'The Entra ID tenant, for checking Web PubSub event tokens in identity mode.', optional: true },
  { name: 'PORT', description: 'Local host only (npm start): the port to listen on (default 7071).', optional: true },
  { name: 'CORS_ALLOWED_ORIGINS', description: 'Local host only (npm start): comma-separated origins (https://app.example.com) whose web pages may call the gateway, or * for any; none by default. On Azure, the template\'s corsAllowedOrigins parameter sets the Function App\'s CORS instead.', optional: true },
  { name: 'HTTPS_PROXY', description: 'A proxy that calls to Azure OpenAI go through, e.g. http://proxy.example.com:8080 (https_proxy is read when it is unset); may carry credentials. The Azure SDK clients read it too, for all their calls: list the managed identity endpoint (localhost,127.0.0.1) in NO_PROXY. Leave unset unless outbound traffic must go through a proxy.', secret: true, optional: true },
  { name: 'HTTP_PROXY', description: 'A proxy for calls to http:// origins (a local simulator), and to https:// ones when HTTPS_PROXY is unset (http_proxy is read when it is unset); may carry credentials.', secret: true, optional: true },
  { name: 'NO_PROXY', description: 'Hosts reached without the proxy, comma-separated: example.com (and its subdomains), *.example.com (subdomains only), host:port, or * for all (no_proxy is read when it is unset).', optional: true },
  { name: 'HOST', description: 'Local host only (npm start): the address to listen on (default 127.0.0.1; 0.0.0.0 to accept other machines).', optional: true },
  { name: 'WEBPUBSUB_HUB', description: 'The Web PubSub hub realtime sessions use (default realtime).', optional: true },
] as const satisfies readonly SettingSpec[];

export type SettingName = (typeof SETTINGS)[number]['name'];

/** The environment, typed by setting name: a misspelt setting fails to compile. */
export type Env = Readonly<Partial<Record<SettingName, string>>>;

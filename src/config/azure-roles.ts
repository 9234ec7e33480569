/**
 * The Azure roles the gateway's managed identity needs, declared where the
 * code that needs them lives; the deployment template's tests check each one
 * is assigned.
 */
export const REQUIRED_ROLES = [
  { name: 'Storage Blob Data Owner', id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b', why: 'the Functions host (AzureWebJobsStorage) and the Flex Consumption deployment container' },
  { name: 'Storage Table Data Contributor', id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', why: 'the shared round-robin cursor and deployment health' },
  { name: 'Key Vault Secrets User', id: '4633458b-17de-408a-b874-0445c86b69e6', why: 'reading the proxy keys and the Azure OpenAI key (KEY_VAULT_URL)' },
  { name: 'Web PubSub Service Owner', id: '12cf5a90-567b-43ae-8102-96cf46c7d9b4', why: 'realtime sessions over Web PubSub (WEBPUBSUB_ENDPOINT)' },
  { name: 'Cognitive Services OpenAI User', id: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd', why: 'calling Azure OpenAI with an Entra ID token when no key is set' },
  { name: 'Monitoring Metrics Publisher', id: '3913510d-42f4-4e42-8a64-420c390055eb', why: 'sending telemetry to Application Insights with Entra ID instead of a key' },
] as const;

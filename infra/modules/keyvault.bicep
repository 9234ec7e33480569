// Key Vault in RBAC mode, holding the two secrets the gateway reads.
param name string
param location string
@secure()
param proxyApiKeys string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

// Created only when a value is given, so a redeployment without one leaves a rotated key alone. The
// parameters file passes azd's PROXY_API_KEYS as `${PROXY_API_KEYS}`, which only azd fills in: the Azure CLI
// passes it as written, and that text must never become a key anyone could guess.
var keysGiven = !empty(proxyApiKeys) && !startsWith(proxyApiKeys, '\${')

resource proxyKeys 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (keysGiven) {
  parent: vault
  name: 'proxy-api-key'
  properties: { value: proxyApiKeys }
}

// No azure-openai-api-key secret: without it the gateway calls Azure OpenAI with its identity.
// Add one (az keyvault secret set --name azure-openai-api-key ...) to use a key instead.

output name string = vault.name
output uri string = vault.properties.vaultUri

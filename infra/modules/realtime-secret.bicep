// Web PubSub's connection string, kept in Key Vault: the gateway needs its access key to check the
// signature on every event the service posts, and reads it through a Key Vault reference.
param keyVaultName string
param webPubSubName string

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource connection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'webpubsub-connection-string'
  properties: { value: webPubSub.listKeys().primaryConnectionString }
}

output secretName string = connection.name

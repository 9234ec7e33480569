// The Function App on the Flex Consumption plan (Node 22, HTTP streaming), running as the gateway's identity.
param planName string
param appName string
param location string
param maximumInstanceCount int
param allowedClientIpRanges array
@description('Origins whose web pages may call the gateway (CORS); empty allows none.')
param corsAllowedOrigins array
param identityId string
param identityClientId string
param storageName string
param blobEndpoint string
param deploymentContainer string
param insightsConnectionString string
@description('The gateway settings (src/config/settings.ts) this template sets.')
param settings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

// No keys or connection strings: storage, Key Vault, Web PubSub, Azure OpenAI and telemetry all use the identity.
var identitySettings = {
  AzureWebJobsStorage__accountName: storageName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: insightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}
var appSettings = union(identitySettings, settings)

var clientRules = [for (range, i) in allowedClientIpRanges: {
  name: 'client-${i}'
  ipAddress: range
  action: 'Allow'
  priority: 100 + i
}]

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  // How `azd deploy` finds the app for the service named in azure.yaml.
  tags: { 'azd-service-name': 'gateway' }
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings resolve with this identity.
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        // One HTTP instance always up: a realtime session's Azure socket lives on an instance, and scaling to zero would end it.
        alwaysReady: [ { name: 'http', instanceCount: 1 } ]
      }
      runtime: { name: 'node', version: '22' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ipSecurityRestrictions: clientRules
      ipSecurityRestrictionsDefaultAction: empty(allowedClientIpRanges) ? 'Allow' : 'Deny'
      // The platform answers browsers' preflights and adds the CORS headers itself (the local host's CORS_ALLOWED_ORIGINS does the same locally).
      cors: { allowedOrigins: corsAllowedOrigins, supportCredentials: false }
      appSettings: [for s in items(appSettings): { name: s.key, value: s.value }]
    }
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName

// The gateway and everything it needs, in one resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json
targetScope = 'resourceGroup'

@description('Prefix for every resource name (letters and digits, 3 to 11 characters).')
@minLength(3)
@maxLength(11)
param namePrefix string

@description('Region for every resource.')
param location string = resourceGroup().location

@description('Name of the existing Azure OpenAI (AI Foundry) resource the gateway calls.')
param openAiAccountName string

@description('Resource group of that Azure OpenAI resource (default: this one).')
param openAiResourceGroup string = resourceGroup().name

@description('MODEL_DEPLOYMENTS: JSON mapping model names to deployment lists.')
param modelDeployments string

@description('Most instances the Function App may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Client IP ranges (CIDR) allowed to call the gateway; empty allows everyone.')
param allowedClientIpRanges array = []

@description('Origins whose web pages may call the gateway, e.g. [\'https://app.example.com\']; empty (the default) allows no browser origin.')
param corsAllowedOrigins array = []

@description('Initial proxy keys (comma-separated) stored in Key Vault; empty leaves the secret to be set by hand.')
@secure()
param proxyApiKeys string = ''

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var names = {
  identity: '${namePrefix}-id-${token}'
  storage: take(toLower('${namePrefix}st${token}'), 24)
  keyVault: take('${namePrefix}-kv-${token}', 24)
  webPubSub: '${namePrefix}-wps-${token}'
  logs: '${namePrefix}-log-${token}'
  insights: '${namePrefix}-appi-${token}'
  plan: '${namePrefix}-plan-${token}'
  app: '${namePrefix}-func-${token}'
}
var deploymentContainer = 'app-package'
var balancerTable = 'gatewaybalancer'
var realtimeHub = 'realtime'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { name: names.identity, location: location }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { logsName: names.logs, insightsName: names.insights, location: location }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: { name: names.storage, location: location, deploymentContainer: deploymentContainer, balancerTable: balancerTable }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: { name: names.keyVault, location: location, proxyApiKeys: proxyApiKeys }
}

module webPubSub 'modules/webpubsub.bicep' = {
  name: 'webpubsub'
  params: { name: names.webPubSub, location: location, hubName: realtimeHub, eventHandlerUrl: 'https://${names.app}.azurewebsites.net/realtime/events' }
}

module realtimeSecret 'modules/realtime-secret.bicep' = {
  name: 'realtime-secret'
  params: { keyVaultName: keyVault.outputs.name, webPubSubName: webPubSub.outputs.name }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    storageName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    webPubSubName: webPubSub.outputs.name
    insightsName: monitoring.outputs.insightsName
  }
}

module openAiRole 'modules/openai-role.bicep' = {
  name: 'openai-role'
  scope: resourceGroup(openAiResourceGroup)
  params: { principalId: identity.outputs.principalId, openAiAccountName: openAiAccountName }
}

module app 'modules/app.bicep' = {
  name: 'app'
  dependsOn: [roles, openAiRole, realtimeSecret]
  params: {
    planName: names.plan
    appName: names.app
    location: location
    maximumInstanceCount: maximumInstanceCount
    allowedClientIpRanges: allowedClientIpRanges
    corsAllowedOrigins: corsAllowedOrigins
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainer: deploymentContainer
    insightsConnectionString: monitoring.outputs.connectionString
    settings: {
      AZURE_OPENAI_ENDPOINT: openAiRole.outputs.endpoint
      MODEL_DEPLOYMENTS: modelDeployments
      KEY_VAULT_URL: keyVault.outputs.uri
      BALANCER_TABLE: balancerTable
      // A Key Vault reference, resolved by the platform with the app's identity: no key in app settings.
      WEBPUBSUB_CONNECTION_STRING: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=webpubsub-connection-string)'
      WEBPUBSUB_HUB: realtimeHub
    }
  }
}

output gatewayBaseUrl string = 'https://${app.outputs.defaultHostName}/v1'
output appName string = app.outputs.name
output keyVaultName string = keyVault.outputs.name

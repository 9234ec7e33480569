// Cognitive Services OpenAI User on the existing Azure OpenAI resource, which may live in another resource group.
param principalId string
param openAiAccountName string

var cognitiveServicesOpenAIUser = loadJsonContent('../roles.json').cognitiveServicesOpenAIUser.id

resource openAi 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = {
  name: openAiAccountName
}

// The resource's own host name (its custom subdomain), which need not be its name: a resource created as one
// name may carry another subdomain, as Foundry (AIServices) resources often do.
output endpoint string = 'https://${openAi.properties.customSubDomainName}.openai.azure.com'

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, principalId, cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
  }
}

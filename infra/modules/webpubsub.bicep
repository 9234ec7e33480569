// Web PubSub carries realtime sessions; its hub posts every event to the gateway.
param name string
param location string
param hubName string
param eventHandlerUrl string

resource service 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  sku: { name: 'Standard_S1', tier: 'Standard', capacity: 1 }
  identity: { type: 'SystemAssigned' }
  properties: {
    // Access keys stay on: the gateway checks each event's signature with one (kept in Key Vault).
    disableLocalAuth: false
    publicNetworkAccess: 'Enabled'
  }
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: service
  name: hubName
  properties: {
    eventHandlers: [
      {
        urlTemplate: eventHandlerUrl
        userEventPattern: '*'
        systemEvents: ['connect', 'connected', 'disconnected']
      }
    ]
    anonymousConnectPolicy: 'deny'
  }
}

output name string = service.name
output endpoint string = 'https://${service.properties.hostName}'

// Log Analytics and Application Insights: the gateway's request log lines arrive here as traces.
param logsName string
param insightsName string
param location string

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logsName
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: insightsName
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Telemetry is sent with the managed identity (Monitoring Metrics Publisher), not the key.
    DisableLocalAuth: true
  }
}

output insightsName string = insights.name
output connectionString string = insights.properties.ConnectionString

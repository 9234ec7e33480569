// Log Analytics and Application Insights: the gateway's request log lines arrive here as traces,
// and a workbook charts them.
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

// The gateway's dashboard: charts over the JSON lines it writes as traces (infra/workbook.json; the README describes each chart).
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(insights.id, 'azure-openai-gateway-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: 'Azure OpenAI gateway'
    category: 'workbook'
    sourceId: insights.id
    serializedData: loadTextContent('../workbook.json')
  }
}

output insightsName string = insights.name
output connectionString string = insights.properties.ConnectionString

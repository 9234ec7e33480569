import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config/settings';

const root = path.resolve(__dirname, '../..');
const infra = path.join(root, 'infra');
const read = (p: string) => readFileSync(path.join(root, p), 'utf8');
const bicepFiles = ['infra/main.bicep', ...readdirSync(path.join(infra, 'modules')).map((f) => `infra/modules/${f}`)];
const allBicep = bicepFiles.map(read).join('\n');
/** The roles the gateway's identity needs: one data file, read by the Bicep (loadJsonContent) and here. */
const roles = JSON.parse(read('infra/roles.json')) as Record<string, { id: string; name: string; why: string }>;

/**
 * API versions Azure documents for each resource type this template uses
 * (the Bicep/ARM template reference pages), checked by hand when a version is
 * added here.
 */
const DOCUMENTED_API_VERSIONS: Record<string, string[]> = {
  'Microsoft.ManagedIdentity/userAssignedIdentities': ['2023-01-31', '2023-07-31-preview', '2024-11-30'],
  'Microsoft.OperationalInsights/workspaces': ['2022-10-01', '2023-09-01', '2025-02-01'],
  'Microsoft.Insights/components': ['2020-02-02'],
  'Microsoft.Insights/workbooks': ['2022-04-01', '2023-06-01'],
  'Microsoft.Storage/storageAccounts': ['2023-01-01', '2023-05-01', '2024-01-01'],
  'Microsoft.Storage/storageAccounts/blobServices': ['2023-01-01', '2023-05-01', '2024-01-01'],
  'Microsoft.Storage/storageAccounts/blobServices/containers': ['2023-01-01', '2023-05-01', '2024-01-01'],
  'Microsoft.Storage/storageAccounts/tableServices': ['2023-01-01', '2023-05-01', '2024-01-01'],
  'Microsoft.Storage/storageAccounts/tableServices/tables': ['2023-01-01', '2023-05-01', '2024-01-01'],
  'Microsoft.KeyVault/vaults': ['2022-07-01', '2023-07-01', '2024-11-01'],
  'Microsoft.KeyVault/vaults/secrets': ['2022-07-01', '2023-07-01', '2024-11-01'],
  'Microsoft.SignalRService/webPubSub': ['2023-02-01', '2024-03-01'],
  'Microsoft.SignalRService/webPubSub/hubs': ['2023-02-01', '2024-03-01'],
  'Microsoft.Authorization/roleAssignments': ['2022-04-01'],
  'Microsoft.CognitiveServices/accounts': ['2023-05-01', '2024-10-01'],
  'Microsoft.Web/serverfarms': ['2023-12-01', '2024-04-01'],
  'Microsoft.Web/sites': ['2023-12-01', '2024-04-01'],
};

describe('the deployment template', () => {
  it('sets every setting the code reads, or the README documents it as optional', () => {
    const readme = read('README.md');
    const app = read('infra/modules/app.bicep') + read('infra/main.bicep');
    for (const s of SETTINGS) {
      const setByTemplate = new RegExp(`\\b${s.name}\\s*:`).test(app);
      if (!setByTemplate) {
        expect(s.optional, `${s.name} is neither set by the template nor optional`).toBe(true);
        expect(readme, `${s.name} is optional but the README does not document it`).toContain(`\`${s.name}`);
      }
    }
    // The settings the deployed gateway depends on are set, by name.
    for (const name of ['MODEL_DEPLOYMENTS', 'AZURE_OPENAI_ENDPOINT', 'KEY_VAULT_URL', 'AzureWebJobsStorage__accountName', 'AZURE_CLIENT_ID', 'WEBPUBSUB_CONNECTION_STRING', 'WEBPUBSUB_HUB']) {
      expect(app).toMatch(new RegExp(`\\b${name}\\s*:`));
    }
  });

  it('puts no key or connection string in app settings where identity works', () => {
    const app = read('infra/modules/app.bicep') + read('infra/main.bicep');
    for (const secret of ['AZURE_OPENAI_API_KEY:', 'PROXY_API_KEY:', 'BALANCER_STORAGE_CONNECTION:', 'AzureWebJobsStorage:', 'listKeys(', 'AccountKey=']) {
      expect(app).not.toContain(secret);
    }
    // The one secret the gateway must hold (to check Web PubSub's event signatures) is a Key Vault reference.
    for (const line of app.split('\n').filter((l) => l.includes('WEBPUBSUB_CONNECTION_STRING:'))) {
      expect(line).toMatch(/WEBPUBSUB_CONNECTION_STRING: '@Microsoft\.KeyVault\(VaultName=\$\{[\w.]+\};SecretName=webpubsub-connection-string\)'/);
    }
    expect(read('infra/modules/app.bicep')).toMatch(/keyVaultReferenceIdentity: identityId/);
    expect(read('infra/modules/storage.bicep')).toMatch(/allowSharedKeyAccess: false/);
    expect(read('infra/modules/keyvault.bicep')).toMatch(/enableRbacAuthorization: true/);
  });

  it('assigns every role in infra/roles.json, once, with the ids taken from that file and nowhere else', () => {
    const assignments = allBicep.match(/Microsoft\.Authorization\/roleAssignments@/g) ?? [];
    expect(assignments.length).toBe(Object.keys(roles).length);
    for (const [key, role] of Object.entries(roles)) {
      expect(role.id, key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(role.why, key).toBeTruthy();
      expect(allBicep, `${role.name} is not assigned`).toMatch(new RegExp(`\\.${key}\\.id\\b`));
      expect(allBicep, `${role.name}'s id is copied into a template`).not.toContain(role.id);
    }
    for (const file of bicepFiles.filter((f) => read(f).includes('roleAssignments@'))) {
      expect(read(file), file).toContain("loadJsonContent('../roles.json')");
    }
  });

  it('has a parameters file that matches the template\'s parameters', () => {
    const template = read('infra/main.bicep');
    const params = [...template.matchAll(/^param (\w+) (\w+)( = .*)?$/gm)].map((m) => ({ name: m[1], required: m[3] === undefined }));
    const file = JSON.parse(read('infra/main.parameters.json')).parameters as Record<string, unknown>;
    for (const key of Object.keys(file)) expect(params.map((p) => p.name), `parameters file has unknown ${key}`).toContain(key);
    for (const p of params.filter((x) => x.required)) expect(Object.keys(file), `required ${p.name} missing`).toContain(p.name);
  });

  it('stores the proxy keys azd is given, and never the parameters file\'s placeholder the Azure CLI passes as written', () => {
    const file = JSON.parse(read('infra/main.parameters.json')).parameters as Record<string, { value: unknown }>;
    // azd fills ${VAR} in the parameters file from its environment (azd env set PROXY_API_KEYS ...).
    expect(file.proxyApiKeys.value).toBe('${PROXY_API_KEYS}');
    const vault = read('infra/modules/keyvault.bicep');
    expect(vault).toMatch(/^var keysGiven = !empty\(proxyApiKeys\) && !startsWith\(proxyApiKeys, '\\\$\{'\)$/m);
    expect(vault).toMatch(/resource proxyKeys 'Microsoft\.KeyVault\/vaults\/secrets@[\d-]+' = if \(keysGiven\) \{\n {2}parent: vault\n {2}name: 'proxy-api-key'/);
    expect(read('README.md')).toContain("azd env set PROXY_API_KEYS '<a long random key>'");
  });

  it('points the gateway at the Azure OpenAI resource\'s own host name, not one built from its resource name', () => {
    expect(read('infra/modules/openai-role.bicep')).toMatch(/^output endpoint string = 'https:\/\/\$\{openAi\.properties\.customSubDomainName\}\.openai\.azure\.com'$/m);
    expect(read('infra/main.bicep')).toMatch(/^ {6}AZURE_OPENAI_ENDPOINT: openAiRole\.outputs\.endpoint$/m);
  });

  it('keeps every log line from Application Insights\' sampling: the dashboard counts requests and tokens from them', () => {
    const host = JSON.parse(read('host.json')) as { logging: { applicationInsights: { samplingSettings: { isEnabled: boolean; excludedTypes?: string } } } };
    const sampling = host.logging.applicationInsights.samplingSettings;
    if (sampling.isEnabled) expect(sampling.excludedTypes?.split(';')).toEqual(expect.arrayContaining(['Request', 'Trace']));
  });

  it('uses only resource API versions Azure documents', () => {
    const uses = [...allBicep.matchAll(/'(Microsoft\.[A-Za-z]+\/[A-Za-z/]+)@([0-9-]+(?:-preview)?)'/g)];
    expect(uses.length).toBeGreaterThan(10);
    for (const [, type, version] of uses) {
      expect(DOCUMENTED_API_VERSIONS[type], `${type} is not in the documented list`).toBeDefined();
      expect(DOCUMENTED_API_VERSIONS[type], `${type}@${version}`).toContain(version);
    }
  });

  it('runs Node 22 on Flex Consumption and points Web PubSub\'s hub at /realtime/events with the events the gateway handles', () => {
    const app = read('infra/modules/app.bicep');
    expect(app).toMatch(/tier: 'FlexConsumption', name: 'FC1'/);
    expect(app).toMatch(/runtime: \{ name: 'node', version: '22' \}/);
    // Flex Consumption's documented way to keep an instance of the HTTP functions (realtime sessions live on one).
    expect(app).toMatch(/alwaysReady: \[ \{ name: 'http', instanceCount: 1 \} \]/);
    expect(read('infra/main.bicep')).toContain("/realtime/events'");
    expect(read('infra/modules/webpubsub.bicep')).toMatch(/systemEvents: \['connect', 'connected', 'disconnected'\]/);
    expect(read('infra/modules/webpubsub.bicep')).toMatch(/userEventPattern: '\*'/);
  });

  it('lets browsers in only from the origins the corsAllowedOrigins parameter names, none by default', () => {
    expect(read('infra/main.bicep')).toMatch(/^param corsAllowedOrigins array = \[\]$/m);
    expect(read('infra/main.bicep')).toMatch(/corsAllowedOrigins: corsAllowedOrigins/);
    expect(read('infra/modules/app.bicep')).toMatch(/cors: \{ allowedOrigins: corsAllowedOrigins, supportCredentials: false \}/);
  });

  it('azure.yaml deploys the TypeScript Functions app to the Function App the template tags for it, from the folder its hook assembles', () => {
    const azd = read('azure.yaml');
    // azd's schema (schemas/v1.0/azure.yaml.json): a lower-case name, and a service with project, language and host.
    expect(azd).toMatch(/^name: [a-z0-9][-a-z0-9]*[a-z0-9]$/m);
    expect(azd).toMatch(/^infra:\n {2}provider: bicep\n {2}path: infra\n {2}module: main$/m);
    const service = /^services:\n {2}([a-z][-a-z0-9]*):\n/m.exec(azd)?.[1];
    expect(service).toBeDefined();
    for (const line of ['project: .', 'language: ts', 'host: function', 'dist: .deploy', 'remoteBuild: false']) expect(azd).toContain(`\n    ${line}\n`);
    // azd finds the app by this tag; the hook builds what azd zips.
    expect(read('infra/modules/app.bicep')).toContain(`tags: { 'azd-service-name': '${service}' }`);
    for (const run of azd.matchAll(/run: node (\S+)/g)) expect(() => read(run[1])).not.toThrow();
    expect(read('.funcignore')).toMatch(/^\/\.deploy\/$/m);
    expect(read('.gitignore')).toMatch(/^\.deploy\/$/m);
  });

  it('deploys the workbook from infra/workbook.json, tied to Application Insights', () => {
    const monitoring = read('infra/modules/monitoring.bicep');
    expect(monitoring).toMatch(/resource workbook 'Microsoft\.Insights\/workbooks@[\d-]+' = \{\n {2}name: guid\(/);
    expect(monitoring).toMatch(/kind: 'shared'/);
    expect(monitoring).toMatch(/sourceId: insights\.id/);
    expect(monitoring).toMatch(/serializedData: loadTextContent\('\.\.\/workbook\.json'\)/);
  });

  it('the workbook has the operator\'s charts, each a Logs query over the gateway\'s JSON trace lines in the chosen time range', () => {
    const workbook = JSON.parse(read('infra/workbook.json')) as { version: string; items: { type: number; name: string; content: Record<string, unknown> }[] };
    expect(workbook.version).toBe('Notebook/1.0');
    const names = workbook.items.map((i) => i.name);
    expect(new Set(names).size).toBe(names.length);
    const parameters = workbook.items.find((i) => i.type === 9)!.content.parameters as { name: string; type: number }[];
    expect(parameters).toContainEqual(expect.objectContaining({ name: 'TimeRange', type: 4 }));
    const charts = workbook.items.filter((i) => i.type === 3).map((i) => i.content as { title: string; query: string; queryType: number; resourceType: string; timeContextFromParameter: string; visualization: string });
    for (const c of charts) {
      expect(c, c.title).toMatchObject({ queryType: 0, resourceType: 'microsoft.insights/components', timeContextFromParameter: 'TimeRange' });
      expect(c.query, c.title).toMatch(/^traces\n\| where message has '"msg":"[a-z ]+"'\n\| extend r = parse_json\(message\)\n/);
      expect(['timechart', 'barchart', 'table']).toContain(c.visualization);
    }
    const titles = charts.map((c) => c.title).join('\n');
    for (const chart of [/^Requests/m, /^Errors by status and code/m, /^Latency percentiles/m, /^429s and failovers per deployment/m, /^Tokens per deployment/m, /^Tokens per key name/m, /^Realtime sessions/m]) {
      expect(titles).toMatch(chart);
    }
    // Every message a chart reads is one the gateway writes, with the fields the chart reads.
    const source = readdirSync(path.join(root, 'src'), { recursive: true }).filter((f) => String(f).endsWith('.ts')).map((f) => read(`src/${String(f)}`)).join('\n');
    for (const c of charts) {
      const msg = /"msg":"([a-z ]+)"/.exec(c.query)![1];
      const call = new RegExp(`msg: '${msg}'[^\\n]*`).exec(source);
      expect(call, `nothing logs "${msg}"`).not.toBeNull();
      if (msg === 'request') continue; // Its fields are checked against real log lines in test/e2e/operability.
      for (const field of c.query.matchAll(/\br\.(\w+)/g)) expect(call![0], `"${msg}" lines have no ${field[1]}`).toMatch(new RegExp(`\\b${field[1]}\\b`));
    }
  });

  it('every module main.bicep names exists', () => {
    for (const m of read('infra/main.bicep').matchAll(/module \w+ '([^']+)'/g)) {
      expect(bicepFiles).toContain(`infra/${m[1]}`);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { azuriteAddress } from '../../src/local/azurite';

describe('where a storage connection string expects Azurite', () => {
  it('UseDevelopmentStorage=true is Azurite\'s table port on this machine, or on the proxy host it names', () => {
    expect(azuriteAddress('UseDevelopmentStorage=true')).toEqual({ host: '127.0.0.1', port: 10002 });
    expect(azuriteAddress('UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://10.1.2.3')).toEqual({ host: '10.1.2.3', port: 10002 });
  });

  it('an explicit table endpoint on this machine is Azurite on that port; a real account is not Azurite', () => {
    expect(azuriteAddress('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://localhost:20002/devstoreaccount1;')).toEqual({ host: '127.0.0.1', port: 20002 });
    expect(azuriteAddress('DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=a2V5;EndpointSuffix=core.windows.net')).toBeUndefined();
    expect(azuriteAddress('DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=a2V5;TableEndpoint=https://prod.table.core.windows.net/')).toBeUndefined();
  });
});

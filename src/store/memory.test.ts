import { runStoreContract } from '../../test/contract/store-contract.js';
import { createMemoryStore } from './memory.js';

runStoreContract('memory', async () => {
  const store = createMemoryStore();
  return { store, cleanup: () => store.close() };
});

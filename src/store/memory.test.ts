import { runStoreContract } from '../../test/contract/store-contract.js';
import { createMemoryStore } from './memory.js';

// Holds values as objects, never serialised: a damaged record cannot exist.
runStoreContract(
  'memory',
  async () => {
    const store = createMemoryStore();
    return { store, cleanup: () => store.close() };
  },
  { corruptible: false },
);

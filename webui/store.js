// Conversations saved in this browser: IndexedDB database "glimpse", object store
// "conversations" keyed by id (images included, as data URLs).

let opening = null;
function open() {
  opening = opening || new Promise((resolve, reject) => {
    const request = indexedDB.open('glimpse', 1);
    request.onupgradeneeded = () => request.result.createObjectStore('conversations', { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error || new Error('IndexedDB is not available'));
  });
  return opening;
}

async function run(mode, action) {
  const database = await open();
  return new Promise((resolve, reject) => {
    const transaction = database.transaction('conversations', mode);
    const request = action(transaction.objectStore('conversations'));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error || new Error('storage transaction aborted'));
  });
}

export const store = {
  all: () => run('readonly', (s) => s.getAll()),
  put: (conversation) => run('readwrite', (s) => s.put(conversation)),
  remove: (id) => run('readwrite', (s) => s.delete(id)),
};

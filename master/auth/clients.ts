// Making API clients: the secret is shown once, here, and only its hash is stored.
import type { Client, Role, Store } from "../store/types.js";
import { hashSecret, newClientId, newClientSecret } from "./secrets.js";

export interface NewClient extends Client {
  client_secret: string;
}

export async function createClient(store: Store, params: { name: string; role: Role; actor: string | null }): Promise<NewClient> {
  const secret = newClientSecret();
  const client = await store.clients.create({
    id: newClientId(params.role),
    name: params.name,
    role: params.role,
    secretHash: await hashSecret(secret),
    actor: params.actor,
  });
  return { ...client, client_secret: secret };
}

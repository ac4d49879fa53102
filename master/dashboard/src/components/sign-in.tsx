// Sign in with a client id and secret; the access token is kept in session storage.
import { useState } from "preact/hooks";
import { Problem, signIn, Unreachable, type Me } from "../api.js";

export function SignIn({ message, onSignedIn }: { message: string | undefined; onSignedIn: (me: Me) => void }) {
  const [clientId, setClientId] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await signIn(clientId.trim(), secret.trim()));
    } catch (failure) {
      if (failure instanceof Unreachable) setError("Cannot reach the master. Is it running?");
      else if (failure instanceof Problem && failure.status === 429) setError(failure.message);
      else setError("Wrong client id or secret, or the client is disabled.");
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="sign-in" id="main">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">gaffer</h1>
        <p>Sign in with an API client's id and secret.</p>
        {message ? (
          <p class="notice" role="status">
            {message}
          </p>
        ) : null}
        <label for="client-id">Client id</label>
        <input id="client-id" name="client_id" autocomplete="username" required value={clientId} onInput={(e) => setClientId(e.currentTarget.value)} />
        <label for="client-secret">Client secret</label>
        <input
          id="client-secret"
          name="client_secret"
          type="password"
          autocomplete="current-password"
          required
          value={secret}
          onInput={(e) => setSecret(e.currentTarget.value)}
        />
        {error ? (
          <p class="error-note" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

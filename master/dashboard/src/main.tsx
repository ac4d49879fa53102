// The dashboard: sign in, then the page the hash names. Served by the master at /.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, forgetToken, signOut, token, Unauthorized, type Me } from "./api.js";
import { Empty } from "./components/common.js";
import { Layout } from "./components/layout.js";
import { SignIn } from "./components/sign-in.js";
import { SessionContext, useHashRoute, type Session } from "./hooks.js";
import { Audit } from "./pages/audit.js";
import { JobPage } from "./pages/job.js";
import { Jobs } from "./pages/jobs.js";
import { Nodes } from "./pages/nodes.js";
import { Overview } from "./pages/overview.js";
import { Schedules } from "./pages/schedules.js";
import { Types } from "./pages/types.js";
import "./styles.css";

function Page({ me, path, params }: { me: Me; path: string; params: URLSearchParams }) {
  if (me.role === "worker") return <Empty>This client is a worker: workers have no dashboard. Sign in as an admin or a client.</Empty>;
  const job = /^\/jobs\/([^/]+)$/.exec(path);
  if (job?.[1]) return <JobPage id={decodeURIComponent(job[1])} />;
  if (path === "/jobs") return <Jobs params={params} />;
  if (path === "/nodes" && me.role === "admin") return <Nodes />;
  if (path === "/schedules") return <Schedules />;
  if (path === "/types") return <Types />;
  if (path === "/audit" && me.role === "admin") return <Audit />;
  return <Overview />;
}

function App() {
  const route = useHashRoute();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [reachable, setReachable] = useState(true);
  useEffect(() => {
    // A token from this tab's session, or a master with auth off, signs in without a form.
    // Without a token, /health says whether the master asks for credentials: no request
    // is refused (and logged in the console) before anyone signs in.
    const ready = token() ? Promise.resolve(true) : api<{ auth: string }>("GET", "/health").then((health) => health.auth === "off");
    ready
      .then((ask) => (ask ? api<Me>("GET", "/api/v1/auth/me").then(setMe) : setMe(null)))
      .catch((failure: unknown) => {
        if (!(failure instanceof Unauthorized)) setMessage("Cannot reach the master.");
        forgetToken();
        setMe(null);
      });
  }, []);
  const session = useMemo<Session | null>(
    () =>
      me
        ? {
            me,
            end: (why) => {
              forgetToken();
              setMessage(why);
              setMe(null);
            },
            setReachable,
          }
        : null,
    [me],
  );
  if (me === undefined) return <p class="loading">Loading…</p>;
  if (!me || !session) {
    return (
      <SignIn
        message={message}
        onSignedIn={(signedIn) => {
          setMessage(undefined);
          setMe(signedIn);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Layout
        me={me}
        path={route.path}
        reachable={reachable}
        onSignOut={() => {
          void signOut().then(() => session.end("You signed out."));
        }}
      >
        <Page me={me} path={route.path} params={route.params} />
      </Layout>
    </SessionContext.Provider>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);

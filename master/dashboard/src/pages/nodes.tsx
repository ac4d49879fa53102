// Nodes: status, last heartbeat, running/capacity, labels, version; drain and resume.
import { useState } from "preact/hooks";
import { api, type Node, type Page } from "../api.js";
import { Empty, ErrorNote, PageHeader, Status, Updated } from "../components/common.js";
import { ago, usePoll } from "../hooks.js";

export function Nodes() {
  const nodes = usePoll(() => api<Page<Node>>("GET", "/api/v1/nodes?limit=500"), 5000, "nodes");
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const act = async (node: Node, action: "drain" | "resume") => {
    setActionError(undefined);
    try {
      await api("POST", `/api/v1/nodes/${encodeURIComponent(node.id)}/${action}`);
      nodes.reload();
    } catch (failure) {
      setActionError(`Could not ${action} ${node.name}: ${(failure as Error).message}`);
    }
  };
  const items = nodes.data?.items;
  return (
    <>
      <PageHeader title="Nodes">
        <Updated at={nodes.updatedAt} />
      </PageHeader>
      <ErrorNote message={nodes.error ?? actionError} />
      {items && items.length === 0 ? <Empty>No node has registered yet. Start a worker: gaffer worker start.</Empty> : null}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Nodes</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Last heartbeat</th>
              <th scope="col">Running</th>
              <th scope="col">Labels</th>
              <th scope="col">Version</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((node) => (
              <tr key={node.id} data-node={node.name}>
                <th scope="row" title={node.id}>
                  {node.name}
                </th>
                <td>
                  <Status value={node.status} />
                </td>
                <td>
                  <time dateTime={node.last_heartbeat}>{ago(node.last_heartbeat)}</time>
                </td>
                <td>
                  {node.running} / {node.capacity}
                </td>
                <td>{node.labels.length ? node.labels.join(", ") : "–"}</td>
                <td>{node.version ?? "–"}</td>
                <td class="actions">
                  {node.status === "online" ? (
                    <button type="button" onClick={() => void act(node, "drain")} aria-label={`Drain ${node.name}`}>
                      Drain
                    </button>
                  ) : null}
                  {node.status === "draining" ? (
                    <button type="button" onClick={() => void act(node, "resume")} aria-label={`Resume ${node.name}`}>
                      Resume
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

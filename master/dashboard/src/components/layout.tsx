// The frame: skip link, navigation by role, who is signed in, and the "master unreachable" banner.
import type { ComponentChildren } from "preact";
import type { Me } from "../api.js";

interface NavItem {
  href: string;
  label: string;
  roles: Me["role"][];
}

const NAV: NavItem[] = [
  { href: "#/", label: "Overview", roles: ["admin", "client"] },
  { href: "#/jobs", label: "Jobs", roles: ["admin", "client"] },
  { href: "#/types", label: "Types", roles: ["admin", "client"] },
  { href: "#/nodes", label: "Nodes", roles: ["admin"] },
  { href: "#/schedules", label: "Schedules", roles: ["admin", "client"] },
  { href: "#/audit", label: "Audit log", roles: ["admin"] },
];

export function Layout(props: { me: Me; path: string; reachable: boolean; onSignOut: () => void; children: ComponentChildren }) {
  const current = (href: string) => {
    const target = href.slice(1);
    return target === "/" ? props.path === "/" : props.path.startsWith(target);
  };
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">gaffer</span>
        <nav aria-label="Sections">
          <ul>
            {NAV.filter((item) => item.roles.includes(props.me.role)).map((item) => (
              <li key={item.href}>
                <a href={item.href} aria-current={current(item.href) ? "page" : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span title={props.me.client_id}>
            {props.me.name} <span class="role">({props.me.role})</span>
          </span>
          {props.me.auth === "on" ? (
            <button type="button" onClick={props.onSignOut}>
              Sign out
            </button>
          ) : null}
        </div>
      </header>
      <div class="banner-slot" aria-live="polite">
        {props.reachable ? null : <p class="banner">Cannot reach the master. Showing the last data; retrying…</p>}
      </div>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </>
  );
}

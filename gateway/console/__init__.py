"""The console: server-rendered web pages at /console for admins and auditors.

Pages call the same operations as the admin and audit APIs (`gateway.admin`,
`gateway.api.audit`) and ask the same admin policy for every read and change
(`gateway.api.admin_deps.authorize`); nothing here decides or writes on its own.

    app.py        the mounted sub-application: routers, error pages, static files
    headers.py    security headers (CSP without inline script) on every answer
    render.py     Jinja2 templates and the page context
    accounts.py   local accounts: argon2 hashes (`tac-gateway admin create`)
    sessions.py   server-side sessions behind an HttpOnly, SameSite=Strict cookie
    csrf.py       reading forms and checking their CSRF token
    guard.py      who is signed in, and may they (the admin policy, as for the API)
    auth.py       sign-in and sign-out with a local account
    oidc.py       sign-in with an OpenID Connect provider (code flow with PKCE)
    overview.py   requests chart, pending applications, expiring grants, log status
    chart.py      the overview's chart as inline SVG
    orgs.py       the review queue, organization detail and its lifecycle moves
    models.py     the catalog with screening status and reports
    audit.py      decisions: filters, pages, detail, verify, export
"""

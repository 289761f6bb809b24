"""`oncall eval`: the product's real pipeline over the scenarios in `eval/scenarios/`, scored.

- `scenarios`: the scenario files (TOML) and what they become at run time (log lines, metric
  series, a code checkout with its history, the Alertmanager webhook);
- `backend`: the load balancer, Prometheus (and, on the model path, a counting proxy to the
  OpenAI-compatible server) the product under test is pointed at;
- `scoring`: deterministic scoring of the WhatsApp text;
- `runner`: `oncall up` in a child process, one scenario after another, the table and totals;
- `command`: the command line (`oncall eval --help`).

The runner talks to the product only through its public interfaces: the `oncall` command and its
environment variables, `POST /alerts`, the NATS subjects `oncall.console.out` and
`oncall.incidents.diagnosed`, and the KV bucket `oncall_conversations`.
"""

// Contender 4: the Azure SDK for JavaScript (@azure/monitor-query-logs), over HTTPS
// (bearer auth refuses plain http) with the harness's self-signed certificate given
// by NODE_EXTRA_CA_CERTS, and a fake token credential (a real program would pass
// e.g. new DefaultAzureCredential() from @azure/identity).
//   NODE_EXTRA_CA_CERTS=cert.pem node bench/js/contender_sdk.mjs https://127.0.0.1:PORT ROWS
// Prints: BENCH status=ok seconds=S rows=N   (or status=error msg=..., exit 1)
import { LogsQueryClient, LogsQueryResultStatus } from "@azure/monitor-query-logs";

const KQL = "AzureActivity | where TimeGenerated > ago(30d)";

function fail(msg) {
  console.log(`BENCH status=error msg=${String(msg).replace(/[\r\n]+/g, " ")}`);
  process.exit(1);
}

const [endpoint, rowsArg] = process.argv.slice(2);
const n = Number(rowsArg);
if (!endpoint || !Number.isInteger(n)) {
  console.error("usage: contender_sdk.mjs ENDPOINT ROWS");
  process.exit(2);
}

const credential = {
  getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3600e3 }),
};
const client = new LogsQueryClient(credential, {
  endpoint: `${endpoint}/v1`,
  retryOptions: { maxRetries: 0 },
});

try {
  const t0 = performance.now();
  const result = await client.queryWorkspace(`bench-${n}`, KQL, { duration: "P30D" });
  const t1 = performance.now();
  if (result.status !== LogsQueryResultStatus.Success) fail(`status ${result.status}`);
  const table = result.tables[0];
  if (table.columnDescriptors.length !== 15 || table.rows[n - 1].length !== 15) fail("unexpected shape");
  if (!(table.rows[0][0] instanceof Date)) fail("datetime not converted");
  if (table.rows.length !== n) fail(`got ${table.rows.length} rows, expected ${n}`);
  console.log(`BENCH status=ok seconds=${((t1 - t0) / 1000).toFixed(6)} rows=${table.rows.length}`);
} catch (e) {
  fail(e && e.message ? e.message : e);
}

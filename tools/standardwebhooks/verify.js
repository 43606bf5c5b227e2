// verify.js checks webhook deliveries with the Standard Webhooks reference
// library (the npm standardwebhooks package pinned in package.json). It
// reads a JSON array of {secret, headers, body, now} on stdin, where now is
// the receiver's clock in Unix milliseconds when the delivery came (the
// tests run the service on a test clock), and prints a JSON array with one
// verdict per delivery: "ok" or the library's error message.
"use strict";
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (d) => (input += d)).on("end", () => {
  const out = [];
  const realNow = Date.now;
  for (const m of JSON.parse(input)) {
    Date.now = () => m.now;
    try {
      const payload = new Webhook(m.secret).verify(m.body, m.headers);
      out.push(JSON.stringify(payload) === JSON.stringify(JSON.parse(m.body)) ? "ok" : "payload differs");
    } catch (e) {
      out.push(String(e && e.message ? e.message : e));
    } finally {
      Date.now = realNow;
    }
  }
  process.stdout.write(JSON.stringify(out));
});

// Allure 3 configuration for the qualification report: one self-contained index.html.
// Categories live here (Allure 3 ignores categories.json in the results folder).
// Keep them in step with harness/evidence/allure.py (CATEGORIES) — a unit test checks it.
import { defineConfig } from "allure";

export default defineConfig({
  name: "Camera-module qualification",
  output: "./out/report",
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportName: "Camera-module qualification",
        groupBy: ["feature", "story"],
      },
    },
  },
  categories: [
    { id: "aborted", name: "Aborted",
      matchers: [{ labels: { outcome: "^ABORTED$" } },
                 { statuses: ["broken"], message: "[Aa]borted|KeyboardInterrupt" }] },
    { id: "out-of-spec", name: "Out of spec (DUT failed)", matchers: { statuses: ["failed"] } },
    { id: "station-error", name: "Station / instrument error",
      matchers: { statuses: ["broken"] } },
    { id: "marginal", name: "Marginal (inside the guard band)",
      matchers: { statuses: ["passed"], labels: { outcome: "^MARGINAL$" } } },
  ],
});

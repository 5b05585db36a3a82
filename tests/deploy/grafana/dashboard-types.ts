// The type each Sprout dashboard (monitoring/grafana/dashboards/*.json) must satisfy, from @grafana/schema.
//
// test_grafana.py writes every dashboard as `export const dashboard: SproutDashboard = <its JSON>;` and runs
// `tsc --noEmit`. The JSON is embedded as an object literal, not imported with resolveJsonModule: an imported
// JSON file is typed with widened strings, which never match Grafana's string enums, whereas a literal is
// checked value by value and key by key (excess-property checks catch misspelled or unknown fields).
//
// Grafana's enums are TS enums; `Loose` turns each into the union of its values, the form they have in JSON.
// Panel options and custom field config are checked per panel type, as partial objects (Grafana fills in
// defaults for what a dashboard leaves out). A panel type missing below fails the check: add it here.
import type { Dashboard, FieldConfig, FieldConfigSource, Panel, RowPanel } from "@grafana/schema";
import type * as BarChart from "@grafana/schema/dist/esm/raw/composable/barchart/panelcfg/x/BarChartPanelCfg_types.gen";
import type * as BarGauge from "@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen";
import type * as Gauge from "@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen";
import type * as Heatmap from "@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen";
import type * as Histogram from "@grafana/schema/dist/esm/raw/composable/histogram/panelcfg/x/HistogramPanelCfg_types.gen";
import type * as PieChart from "@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen";
import type * as Stat from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen";
import type * as StateTimeline from "@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen";
import type * as Table from "@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen";
import type * as Text from "@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen";
import type * as TimeSeries from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";

type Scalar = number | boolean | null | undefined;

/** Required fields stay required; TS string enums become the union of their values. */
type Loose<T> = T extends string ? `${T}` : T extends Scalar ? T
  : T extends (infer U)[] ? Loose<U>[] : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;

/** The same with every field optional (panel options and custom field config). */
type LoosePartial<T> = T extends string ? `${T}` : T extends Scalar ? T
  : T extends (infer U)[] ? LoosePartial<U>[] : T extends object ? { [K in keyof T]?: LoosePartial<T[K]> } : T;

type NoCustom = Record<string, never>;

type TypedPanel<Type extends string, Options, Custom> = Omit<Loose<Panel>, "type" | "options" | "fieldConfig"> & {
  type: Type;
  options?: LoosePartial<Options>;
  fieldConfig?: Omit<Loose<FieldConfigSource>, "defaults"> & {
    defaults: Omit<Loose<FieldConfig>, "custom"> & { custom?: LoosePartial<Custom> };
  };
};

export type SproutPanel =
  | TypedPanel<"timeseries", TimeSeries.Options, TimeSeries.FieldConfig>
  | TypedPanel<"stat", Stat.Options, NoCustom>
  | TypedPanel<"bargauge", BarGauge.Options, NoCustom>
  | TypedPanel<"gauge", Gauge.Options, NoCustom>
  | TypedPanel<"table", Table.Options, Table.FieldConfig>
  | TypedPanel<"text", Text.Options, NoCustom>
  | TypedPanel<"piechart", PieChart.Options, PieChart.FieldConfig>
  | TypedPanel<"barchart", BarChart.Options, BarChart.FieldConfig>
  | TypedPanel<"heatmap", Heatmap.Options, Heatmap.FieldConfig>
  | TypedPanel<"histogram", Histogram.Options, Histogram.FieldConfig>
  | TypedPanel<"state-timeline", StateTimeline.Options, StateTimeline.FieldConfig>;

/** A row (a titled band that groups the panels below it, no query of its own). */
export type SproutRow = Omit<Loose<RowPanel>, "panels"> & { panels: SproutPanel[] };

export type SproutDashboard = Omit<Loose<Dashboard>, "panels"> & { panels: (SproutPanel | SproutRow)[] };

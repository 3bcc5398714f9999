using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret scenes list|show|delete|retry|prune`: the archive paths in the catalogue and their versions.</summary>
public static class ScenesCommands
{
    public static Command Build()
    {
        var scenes = new Command("scenes", "List, show, delete, retry and prune the catalogue's scenes (archive paths and their versions)");
        scenes.Subcommands.Add(List());
        scenes.Subcommands.Add(Show());
        scenes.Subcommands.Add(Delete());
        scenes.Subcommands.Add(Retry());
        scenes.Subcommands.Add(Prune());
        return scenes;
    }

    private static Command List()
    {
        var all = new Option<bool>("--all") { Description = "Also removed paths and the versions no path shows (superseded, failed attempts)" };
        var status = new Option<string?>("--status") { Description = "Only rows with this status: " + string.Join(", ", SceneListQuery.Statuses) };
        status.AcceptOnlyFromAmong(SceneListQuery.Statuses);
        var bbox = new Option<string?>("--bbox") { Description = "minLon,minLat,maxLon,maxLat (WGS84): scenes whose footprint meets it" };
        var after = new Option<string?>("--after") { Description = "Only scenes acquired on or after this date" };
        var before = new Option<string?>("--before") { Description = "Only scenes acquired before this date" };
        var limit = new Option<int>("--limit") { Description = "Most rows", DefaultValueFactory = _ => 1000 }.InRange(1, 10_000);
        var offset = new Option<int>("--offset") { Description = "Rows to skip", DefaultValueFactory = _ => 0 }.Must(v => v >= 0, "must be 0 or more");
        var format = CatalogConnection.FormatOption();
        var list = new Command("list", "The current version of every archive path (--all: with removed paths and superseded versions)")
            { all, status, bbox, after, before, limit, offset, format, DbCommands.DbOption };
        CommandAction.Set(list, async (parse, output, ct) =>
        {
            var filter = SearchQuery.Parse(null, null, parse.GetValue(bbox), null, parse.GetValue(after), parse.GetValue(before), textRequired: false).Filter;
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var (rows, total) = await store.ListScenesAsync(new SceneListQuery
                {
                    All = parse.GetValue(all), Status = parse.GetValue(status), Area = filter.Area, AcquiredAfter = filter.AcquiredAfter,
                    AcquiredBefore = filter.AcquiredBefore, Limit = parse.GetValue(limit), Offset = parse.GetValue(offset),
                }, ct);
                if (parse.GetValue(format) == "json")
                    await output.WriteLineAsync(new JsonArray(rows.Select(r => (JsonNode?)SceneJson.ToJson(r)).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                else
                {
                    await output.WriteAsync(Table(rows));
                    await output.WriteLineAsync(rows.Count < total ? $"{rows.Count} of {total} rows (--offset {parse.GetValue(offset) + rows.Count} for more)" : $"{total} rows");
                }
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return list;
    }

    public static string Table(IReadOnlyList<SceneListing> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{"id",6}  {"status",-10} {"ver",3}  {"acquired",-10}  {"tiles",5}  {"coverage",8}  {"model",-18}  path");
        foreach (var r in rows)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{r.Id?.ToString(CultureInfo.InvariantCulture) ?? "-",6}  {r.Status,-10} {r.Version?.ToString(CultureInfo.InvariantCulture) ?? "-",3}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{r.AcquiredAt?.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) ?? "-",-10}  {r.Tiles,5}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{(r.Coverage is { } c ? c.ToString("P1", CultureInfo.InvariantCulture) : "-"),8}  {Shorten(r.Model, 18),-18}  {r.Path}");
            sb.AppendLine();
            if (r.OutOfRange) sb.AppendLine("        out of range: the model was not trained for this resolution");
            foreach (var w in r.Warnings) sb.AppendLine($"        warning: {w}");
            if (r.Status == "failed" && r.Error is { } e) sb.AppendLine($"        error: {e}");
        }
        return sb.ToString();
    }

    private static string Shorten(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    private static Command Show()
    {
        var scene = new Argument<string>("scene") { Description = "Scene id (a version) or archive path" };
        var format = CatalogConnection.FormatOption();
        var show = new Command("show", "One scene: every path showing it or every version of the path, with plan, decision and errors") { scene, format, DbCommands.DbOption };
        CommandAction.Set(show, async (parse, output, ct) =>
        {
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var name = parse.GetValue(scene)!;
                var rows = await SceneManagement.FindAsync(store, name, ct);
                if (rows.Count == 0) throw new ArgumentException($"{name}: no such scene in the catalogue (see `rscapret scenes list --all`)");
                if (parse.GetValue(format) == "json")
                {
                    await output.WriteLineAsync(new JsonArray(rows.Select(r =>
                    {
                        var o = SceneJson.ToJson(r);
                        o["plan"] = r.Plan is { } p ? JsonNode.Parse(p) : null;
                        return (JsonNode?)o;
                    }).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                    return 0;
                }
                foreach (var r in rows)
                {
                    await output.WriteLineAsync($"scene {r.Id?.ToString(CultureInfo.InvariantCulture) ?? "-"}: {r.Path}");
                    await output.WriteLineAsync($"  status: {r.Status}" + (r.Version is { } v ? $", version {v}" : "") + $", model {r.Model}");
                    await output.WriteLineAsync($"  acquired: {r.AcquiredAt?.UtcDateTime.ToString("u", CultureInfo.InvariantCulture) ?? "unknown"}");
                    await output.WriteLineAsync($"  tiles: {r.Tiles} stored, {r.SkippedTiles} skipped (nodata); coverage " +
                                                (r.CoverageState switch
                                                {
                                                    "measured" => r.Coverage!.Value.ToString("P2", CultureInfo.InvariantCulture),
                                                    "no_valid_pixels" => "none (no valid pixels: the raster is nodata throughout)",
                                                    _ => "not measured (ingested before coverage was recorded)",
                                                }));
                    if (r.TileGsd is { } g) await output.WriteLineAsync(FormattableString.Invariant($"  tile resolution: {Raster.SceneDescription.Gsd(g)} m/px") + (r.OutOfRange ? " (out of the model's range)" : ""));
                    await output.WriteLineAsync($"  file: {r.SizeBytes:N0} bytes, sha256 {r.ContentSha256 ?? "-"}");
                    if (r.Plan is { } plan) await output.WriteLineAsync($"  plan: {plan}");
                    if (r.Decision is { } d) await output.WriteLineAsync($"  last decision: {d}");
                    if (r.PendingId is { } pid) await output.WriteLineAsync($"  newer version: scene {pid} ({r.PendingStatus})");
                    foreach (var w in r.Warnings) await output.WriteLineAsync($"  warning: {w}");
                    if (r.Error is { } e) await output.WriteLineAsync($"  error: {e}");
                    if (r.RemovedAt is { } at) await output.WriteLineAsync($"  retired: {at.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)}");
                }
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return show;
    }

    private static Command Delete()
    {
        var scene = new Argument<string>("scene") { Description = "Scene id (a version: deletes it and the paths showing it) or archive path (its row and the versions only it shows)" };
        var delete = new Command("delete", "Delete a scene from the catalogue: its tiles and cached map tiles (the file itself is not touched; the next scan of its folder adds it again)")
            { scene, DbCommands.DbOption };
        CommandAction.Set(delete, async (parse, output, ct) =>
        {
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var name = parse.GetValue(scene)!;
                var (deleted, cached) = await SceneManagement.DeleteAsync(store, name, TileDiskCache.FromEnvironment(), ct);
                if (deleted.Paths.Count == 0 && deleted.SceneIds.Count == 0)
                    throw new ArgumentException($"{name}: no such scene in the catalogue (see `rscapret scenes list --all`)");
                await output.WriteLineAsync($"deleted {deleted.Paths.Count} path(s), {deleted.SceneIds.Count} version(s) " +
                                            $"({string.Join(", ", deleted.SceneIds)}), {Counted.Of(deleted.Tiles, "tile")}, {cached} cached map tiles");
                foreach (var p in deleted.Paths) await output.WriteLineAsync($"  {p}");
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return delete;
    }

    private static Command Retry()
    {
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        model.Description = "Model folder for failed scenes whose model folder the catalogue does not know (default $RSCAPRET_MODEL, else models/default)";
        var retry = new Command("retry", "Ingest again every path whose latest attempt failed, with the plan it was asked with; exit code 2 if any fails again")
            { model, device, DbCommands.DbOption };
        CommandAction.Set(retry, async (parse, output, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var failed = await store.FailedPathsAsync(ct);
                if (failed.Count == 0) { await output.WriteLineAsync("no failed scenes"); return 0; }
                using var models = new ModelCache(parse.GetValue(device));
                var fallback = CommonOptions.ModelFolder(parse.GetValue(model));
                var failures = 0;
                foreach (var (path, _, dir, planJson, lastError) in failed)
                {
                    var modelDir = dir is { } d && Directory.Exists(d) ? d : fallback;
                    var options = (IngestPlan.FromJson(planJson) is { } plan ? IngestJobOptions.FromPlan(plan) : new IngestJobOptions()).ToIngest();
                    try
                    {
                        var r = await models.WithModelAsync(modelDir, encoder => new SceneIngestor(store, encoder).IngestAsync(path, options, ct: ct), ct);
                        await output.WriteLineAsync($"{path}: {r.OutcomeText} (scene {r.SceneId}, {Counted.Of(r.Tiles, "tile")}) — failed before: {lastError}");
                    }
                    catch (Exception e) when (e is not OperationCanceledException && e is not OutOfMemoryException)
                    {
                        failures++;
                        await error.WriteLineAsync($"error: {path}: failed again: {ErrorMessages.OneLine(e)}");
                    }
                }
                return failures == 0 ? 0 : CommandAction.UserError;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return retry;
    }

    private static Command Prune()
    {
        var olderThan = new Option<double>("--older-than") { Description = "Only what was retired or failed at least this many days ago", DefaultValueFactory = _ => 0 }
            .Must(v => v >= 0 && double.IsFinite(v), "must be 0 or more days");
        var prune = new Command("prune", "Delete removed and superseded versions (no longer searchable; kept for `changes` until now) and old failures")
            { olderThan, DbCommands.DbOption };
        CommandAction.Set(prune, async (parse, output, ct) =>
        {
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var (pruned, cached) = await SceneManagement.PruneAsync(store, TimeSpan.FromDays(parse.GetValue(olderThan)), TileDiskCache.FromEnvironment(), ct);
                await output.WriteLineAsync($"pruned {pruned.Versions} version(s) ({Counted.Of(pruned.Tiles, "tile")}) and {pruned.Paths} path(s); {cached} cached map tiles dropped");
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return prune;
    }
}

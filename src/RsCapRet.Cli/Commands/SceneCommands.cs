using System.CommandLine;
using System.Globalization;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret scene-info PATH` and `rscapret ingest PATH...`.</summary>
public static class SceneCommands
{
    public static Option<string?> BandsOption()
    {
        var bands = new Option<string?>("--bands") { Description = "Bands for R,G,B, e.g. 4,3,2 (default: colour interpretation, else 1,2,3)" };
        bands.Validators.Add(r =>
        {
            if (r.Tokens is [{ Value: var value }] && !BandSelection.TryParse(value, out _)) r.AddError($"{BandSelection.Rule}, got '{value}'");
        });
        return bands;
    }

    public static Option<int> OverlapOption() =>
        new Option<int>("--overlap") { Description = "Tile overlap in model pixels", DefaultValueFactory = _ => 0 }.Must(v => v >= 0, "must be 0 or more");
    public static Option<double?> GsdOption() =>
        new Option<double?>("--gsd") { Description = "Resample tiles to this ground sample distance in metres/px (a CRS in degrees or feet is converted; a file without a CRS: its own units)" }
            .Must(v => v > 0 && double.IsFinite(v), "must be a positive number");
    public static Option<double> MaxNodataOption() =>
        new Option<double>("--max-nodata") { Description = "Skip tiles with more nodata than this fraction", DefaultValueFactory = _ => 0.5 }
            .Must(v => v is >= 0 and <= 1, "must be a fraction 0..1");
    public static Option<string?> AcquiredPatternOption()
    {
        var option = new Option<string?>("--acquired-pattern")
        {
            Description = "Regular expression with a (?<date>YYYYMMDD) group, matched against the file name when neither the raster's " +
                          $"metadata nor a STAC item beside it dates the scene (default {AcquisitionTimes.PatternVariable}, else NAIP's trailing _YYYYMMDD)",
        };
        // Checked while parsing, so a bad pattern is a usage error before any work starts.
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is not { } text) return;
            try { AcquisitionTimes.Pattern(text); }
            catch (FormatException e) { result.AddError(e.Message); }
        });
        return option;
    }

    public static Option<bool> SkipOutOfRangeOption() => new("--skip-out-of-range")
    {
        Description = "Leave out scenes whose resolution lies far outside the model's training range (they are flagged out_of_range otherwise)",
    };

    public static Option<bool> NoCrsOption() => new("--no-crs") { Description = "Accept rasters without a CRS (pixel-space footprints, not on the map)" };

    /// <summary>The tiling the options ask for; the tile size and target GSD come from the model (<see cref="TilingPlan"/>).</summary>
    public static TilingOptions Tiling(ParseResult parse, Option<string?> bands, Option<int> overlap, Option<double?> gsd, Option<double> maxNodata, Option<bool> noCrs,
        Option<string?> acquiredPattern)
    {
        var tiling = new TilingOptions
        {
            Overlap = parse.GetValue(overlap), TargetGsd = parse.GetValue(gsd),
            Bands = parse.GetValue(bands) is { Length: > 0 } b ? BandSelection.Parse(b, "--bands") : null,
            MaxNodataFraction = parse.GetValue(maxNodata), AllowMissingCrs = parse.GetValue(noCrs),
        };
        return parse.GetValue(acquiredPattern) is { } pattern
            ? tiling with { AcquiredNamePattern = AcquisitionTimes.Pattern(pattern) }
            : tiling;
    }

    /// <summary>How long an interrupted ingest may take to stop (a model batch cannot be cut short) before it is ended.</summary>
    internal static readonly TimeSpan SignalGrace = TimeSpan.FromSeconds(10);

    public static IEnumerable<Command> Build()
    {
        var (bands, overlap, gsd, maxNodata, noCrs) = (BandsOption(), OverlapOption(), GsdOption(), MaxNodataOption(), NoCrsOption());
        var acquiredPattern = AcquiredPatternOption();
        var path = new Argument<string>("path") { Description = "Raster file" };
        var inspectModel = CommonOptions.Model();
        var json = new Option<bool>("--json") { Description = "Machine-readable output (bands, CRS, pixel size, WGS84 footprint as GeoJSON)" };
        var info = new Command("inspect", "Describe a raster (bands, nodata, CRS, pixel size, footprint) and the tiles `ingest` would make of it with the model")
            { path, inspectModel, bands, overlap, gsd, maxNodata, noCrs, acquiredPattern, json };
        info.Aliases.Add("scene-info");
        CommandAction.Set(info, async (parse, output, ct) =>
        {
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(SceneDescription.Json(parse.GetValue(path)!,
                    parse.GetValue(acquiredPattern) is { } p ? AcquisitionTimes.Pattern(p) : null));
                return 0;
            }
            // The model's configs are enough for its tile size and training resolution: no weights are loaded.
            var modelDir = CommonOptions.ModelFolder(parse.GetValue(inspectModel));
            var scene = parse.GetValue(path)!;
            var plan = TilingPlan.For(scene, Tiling(parse, bands, overlap, gsd, maxNodata, noCrs, acquiredPattern), RsCapRetTileEncoder.TilingOf(modelDir));
            using var tiler = SceneTiler.Open(scene, plan.Tiling, ct);
            await output.WriteAsync(SceneDescription.Text(tiler.Info, plan.Tiling.TileSize));
            await output.WriteLineAsync($"model: {modelDir} ({plan.Tiling.TileSize}-px input)");
            await output.WriteLineAsync($"resolution: {plan.Resolution.Note}");
            if (plan.Resolution.Warning is { } w) await parse.InvocationConfiguration.Error.WriteLineAsync($"warning: {scene}: {w}");
            foreach (var warning in tiler.Warnings(ct)) await parse.InvocationConfiguration.Error.WriteLineAsync($"warning: {scene}: {warning}");
            var kept = tiler.Tiles(ct).Count();
            await output.WriteLineAsync($"tiles: {kept} to caption, {tiler.SkippedTiles} skipped (more than {parse.GetValue(maxNodata):P0} nodata)");
            await output.WriteLineAsync(tiler.Coverage is { } coverage
                ? FormattableString.Invariant($"coverage: {coverage * 100:0.0} % of valid pixels ({tiler.CoveredPixels:N0} of {tiler.ValidPixels:N0} px under a kept tile)")
                : "coverage: none (no valid pixel)");
            return 0;
        });

        var paths = new Argument<string[]>("paths") { Description = "Raster files", Arity = ArgumentArity.OneOrMore };
        var (model, device, bf16) = (CommonOptions.Model(), CommonOptions.Device(), CommonOptions.Bf16());
        var batch = new Option<int>("--batch") { Description = "Tiles per model batch", DefaultValueFactory = _ => 16 }.InRange(1, 1024);
        var noCaptions = new Option<bool>("--no-captions") { Description = "Store vectors only (much faster)" };
        var cells = new Option<bool>("--cells")
        {
            Description = "Also keep each tile's 7x7 cell vectors (half precision, about 25 kB a tile): localize, search --localize and " +
                          "classify --cells then need no model pass over the imagery",
        };
        var wait = new Option<bool>("--wait")
        {
            Description = "When another process is ingesting a scene, wait until it finishes or its lease lapses (default: say so and exit non-zero)",
        };
        var force = new Option<bool>("--force") { Description = "Ingest a new version even when the path shows these bytes with this plan already" };
        var skipOutOfRange = SkipOutOfRangeOption();
        var ingest = new Command("ingest", "Tile, caption, embed and store scenes: each path shows one version (its content with this model and plan); " +
                                           "an edited file or a new plan makes a new version that replaces the old one when complete")
            { paths, model, device, bf16, bands, overlap, gsd, maxNodata, noCrs, acquiredPattern, batch, noCaptions, cells, wait, force, skipOutOfRange, DbCommands.DbOption };
        CommandAction.Set(ingest, async (parse, output, ct) =>
        {
            var b = parse.GetValue(batch);
            var error = parse.InvocationConfiguration.Error;
            // From here on Ctrl-C and SIGTERM cancel the run, which releases its scene's claim (recording why).
            using var signals = new TerminationSignals(SignalGrace);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, signals.Token);
            string? current = null;
            try
            {
                var modelDir = CommonOptions.ModelFolder(parse.GetValue(model));
                using var encoder = RsCapRetTileEncoder.Load(modelDir, parse.GetValue(device)!, parse.GetValue(bf16));
                var connection = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
                await using var ds = await RsCapRetDatabase.OpenAsync(connection, ct: stop.Token);
                var ingestor = new SceneIngestor(new CatalogStore(ds), encoder);
                var options = new IngestOptions
                {
                    Tiling = Tiling(parse, bands, overlap, gsd, maxNodata, noCrs, acquiredPattern), BatchSize = b, Caption = !parse.GetValue(noCaptions),
                    WaitIfHeld = parse.GetValue(wait), CancelReason = () => signals.CancelReason, Force = parse.GetValue(force),
                    SkipOutOfRange = parse.GetValue(skipOutOfRange), Cells = parse.GetValue(cells),
                };
                // Each run is recorded as a job on the dashboard, beside the workers' jobs.
                var jobOptions = new Jobs.IngestJobOptions(parse.GetValue(bands), options.Tiling.TargetGsd, options.Tiling.Overlap, options.Tiling.MaxNodataFraction,
                    options.Tiling.AllowMissingCrs, options.Caption, SkipOutOfRange: options.SkipOutOfRange, Force: options.Force, Cells: options.Cells);
                var dashboard = Jobs.DashboardRecord.TryStorage(connection, error);
                var failures = 0;
                var bar = new ConsoleProgress(output, ConsoleProgress.Terminal(error));
                foreach (var p in parse.GetValue(paths)!)
                {
                    current = p;
                    var full = System.IO.Path.GetFullPath(p);
                    var record = Jobs.DashboardRecord.TryStart<Jobs.IngestSceneJob>(dashboard, j => j.RunAsync(full, modelDir, jobOptions, null, CancellationToken.None));
                    try
                    {
                        var r = await ingestor.IngestAsync(p, options, progress =>
                        {
                            bar.Report(progress);
                            record?.Report(progress.Done, progress.GridTiles, "tiles", progress.Message ?? $"{progress.Stored} stored, {progress.Skipped} skipped (nodata)", force: progress.Message is not null);
                        }, stop.Token);
                        if (r.Outcome == IngestOutcome.HeldByAnotherWorker)
                        {
                            // Not done by this run: a script must not take it for ingested.
                            failures++;
                            var lapses = r.HolderLeaseLeft is { } left ? $"; its lease lapses in {Math.Ceiling(left.TotalSeconds):F0} s unless renewed" : "";
                            var why = $"{p}: scene {r.SceneId} is being ingested by another process{lapses}; pass --wait to wait for it";
                            record?.Fail(new InvalidOperationException(why));
                            await error.WriteLineAsync($"error: {why}");
                            continue;
                        }
                        var line = $"{p}: {r.OutcomeText} (scene {r.SceneId}, {Counted.Of(r.Tiles, "tile")}, {r.SkippedTiles} skipped" +
                                   (r.Coverage is { } cov ? $", coverage {cov.ToString("P1", CultureInfo.InvariantCulture)}" : "") + ")" + (r.Resolution is { } res ? $"; {res}" : "") +
                                   (r.TakenOverFrom is { } from ? $"; taken over from {from}" : "");
                        record?.Succeed(line);
                        await output.WriteLineAsync(line);
                        if (r.Warning is { } w)
                        {
                            record?.Warn(w);   // on the run's dashboard page too
                            await error.WriteLineAsync($"warning: {p}: {w}");
                        }
                    }
                    catch (Npgsql.NpgsqlException e) when (!stop.IsCancellationRequested)
                    {
                        // The scene's claim was released if the database came back in time, else it lapses with its lease.
                        failures++;
                        record?.Fail(e);
                        await error.WriteLineAsync($"error: {p}: database: {e.Message}" + (e.InnerException is { } inner ? $" ({inner.Message})" : ""));
                    }
                    catch (Exception e) when (e is RasterException or IOException or InvalidOperationException or ArgumentException && !stop.IsCancellationRequested)
                    {
                        // One bad scene does not stop the others; its error is recorded on its own row.
                        failures++;
                        record?.Fail(e);
                        await error.WriteLineAsync($"error: {e.Message}");
                    }
                    catch (Exception e) when (stop.IsCancellationRequested)
                    {
                        record?.Fail(new OperationCanceledException(signals.CancelReason, e));
                        throw;
                    }
                }
                return failures == 0 ? 0 : CommandAction.UserError;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                await error.WriteLineAsync(current is null ? $"error: {signals.CancelReason}" : $"error: {current}: {signals.CancelReason}");
                return signals.ExitCode;
            }
        });
        return [info, ingest];
    }
}

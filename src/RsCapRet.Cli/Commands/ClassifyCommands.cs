using System.CommandLine;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret classify SCENE [--labels "a,b,c" | --labels-file F] [--template "{label}"] [--out X.tif]`: a zero-shot
/// land-use map of an ingested scene, written as X.tif (one cell per tile, class index, colour table) and
/// X.geojson beside it (tile footprints with label, score and margin); see <see cref="OutputPaths"/>.
/// </summary>
public static class ClassifyCommands
{
    public static Command Build()
    {
        var scene = new Argument<string>("scene") { Description = "An ingested scene: its id, or its file path" };
        var labels = new Option<string?>("--labels") { Description = "Comma-separated labels (default: the UCM and RSICD scene classes)" };
        var labelsFile = new Option<string?>("--labels-file") { Description = "A file of labels, one per line (# starts a comment)" };
        var template = new Option<string?>("--template") { Description = $"The prompt of a label, with {{label}} in it (default \"{LandUseQuery.DefaultTemplate}\")" };
        var output = new Option<string?>("--out", "-o") { Description = "Write X.tif and X.geojson beside it (--out X.tif; a name without .tif gets both extensions; default: scene-ID-classes.tif/.geojson in the current folder)" };
        var cells = new Option<bool>("--cells")
        {
            Description = "Also write X-cells.tif: every cell (7x7 per tile) labelled, 7 times finer than the tile grid, same colours and labels " +
                          "(needs a scene ingested with --cells)",
        };
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("classify", "Zero-shot land-use map of an ingested scene: every tile labelled by the nearest label prompt ([RET] vectors of the scene's model)")
            { scene, labels, labelsFile, template, output, cells, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, stdout, ct) =>
        {
            var query = LandUseQuery.Parse(parse.GetValue(scene), parse.GetValue(labels), parse.GetValue(labelsFile), parse.GetValue(template));
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var store = new CatalogStore(ds);
            IReadOnlyList<float[]> promptVectors = [];
            var map = await LandUseClassifier.RunAsync(store, query, async prompts =>
            {
                using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
                // Each prompt within the token limit (RSCAPRET_MAX_PROMPT_TOKENS), a few per forward pass, Ctrl-C between passes.
                promptVectors = ModelWorkLimits.CommandLine().EmbedTexts(encoder, prompts, ct, "label prompt");
                return (await store.RegisterModelAsync(encoder.Identity, ct), promptVectors);
            }, ct);
            var (tifPath, geoJsonPath) = OutputPaths(parse.GetValue(output), map.Classes.Scene.Id);
            var dir = Path.GetDirectoryName(Path.GetFullPath(tifPath))!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"--out: folder {dir} does not exist");
            await stdout.WriteAsync(map.Table());
            if (map.Classes.Tiles.Count == 0)
            {
                await stdout.WriteLineAsync("no stored tiles: nothing written");
                return 0;
            }
            // The cell map first: a scene without stored cells is an error before any file is written.
            var cellMap = parse.GetValue(cells) ? await CellLandUseMap.BuildAsync(store, map, promptVectors, ct) : null;
            map.WriteGeoTiff(tifPath);
            await File.WriteAllTextAsync(geoJsonPath, map.GeoJson(), ct);
            await stdout.WriteLineAsync($"wrote {tifPath} (class per tile, colour table, label names) and {geoJsonPath}");
            if (cellMap is not null)
            {
                var cellPath = tifPath[..^Path.GetExtension(tifPath).Length] + "-cells.tif";
                cellMap.WriteGeoTiff(cellPath);
                await stdout.WriteAsync(cellMap.Table());
                await stdout.WriteLineAsync($"wrote {cellPath} (class per cell, {cellMap.Width}x{cellMap.Height}, the same colour table and label names)");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// The files --out names, as GDAL's tools take an output name: "classes.tif" (or .tiff) writes classes.tif and
    /// classes.geojson beside it; "classes.geojson" the same two; a name without either extension gets both added
    /// (BASE.tif, BASE.geojson). Without --out: scene-ID-classes.tif and .geojson in the current folder.
    /// </summary>
    public static (string Tif, string GeoJson) OutputPaths(string? output, long sceneId)
    {
        var name = string.IsNullOrWhiteSpace(output) ? $"scene-{sceneId}-classes" : output;
        var extension = Path.GetExtension(name);
        if (extension.Equals(".tif", StringComparison.OrdinalIgnoreCase) || extension.Equals(".tiff", StringComparison.OrdinalIgnoreCase))
            return (name, name[..^extension.Length] + ".geojson");
        if (extension.Equals(".geojson", StringComparison.OrdinalIgnoreCase))
            return (name[..^extension.Length] + ".tif", name);
        return (name + ".tif", name + ".geojson");
    }
}

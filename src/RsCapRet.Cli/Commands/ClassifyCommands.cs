using System.CommandLine;
using RsCapRet.Pipeline;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret classify SCENE [--labels "a,b,c" | --labels-file F] [--template "{label}"] [--out BASE]`: a zero-shot
/// land-use map of an ingested scene, written as BASE.tif (one cell per tile, class index, colour table) and
/// BASE.geojson (tile footprints with label, score and margin).
/// </summary>
public static class ClassifyCommands
{
    public static Command Build()
    {
        var scene = new Argument<string>("scene") { Description = "An ingested scene: its id, or its file path" };
        var labels = new Option<string?>("--labels") { Description = "Comma-separated labels (default: the UCM and RSICD scene classes)" };
        var labelsFile = new Option<string?>("--labels-file") { Description = "A file of labels, one per line (# starts a comment)" };
        var template = new Option<string?>("--template") { Description = $"The prompt of a label, with {{label}} in it (default \"{LandUseQuery.DefaultTemplate}\")" };
        var output = new Option<string?>("--out") { Description = "Write BASE.tif and BASE.geojson (default: scene-ID-classes in the current folder)" };
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("classify", "Zero-shot land-use map of an ingested scene: every tile labelled by the nearest label prompt ([RET] vectors of the scene's model)")
            { scene, labels, labelsFile, template, output, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, stdout, ct) =>
        {
            var query = LandUseQuery.Parse(parse.GetValue(scene), parse.GetValue(labels), parse.GetValue(labelsFile), parse.GetValue(template));
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var store = new CatalogStore(ds);
            var map = await LandUseClassifier.RunAsync(store, query, async prompts =>
            {
                using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
                return (await store.RegisterModelAsync(encoder.Identity, ct), encoder.EmbedTexts(prompts));
            }, ct);
            var basePath = parse.GetValue(output) ?? $"scene-{map.Classes.Scene.Id}-classes";
            var dir = Path.GetDirectoryName(Path.GetFullPath(basePath))!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"--out: folder {dir} does not exist");
            await stdout.WriteAsync(map.Table());
            if (map.Classes.Tiles.Count == 0)
            {
                await stdout.WriteLineAsync("no stored tiles: nothing written");
                return 0;
            }
            map.WriteGeoTiff(basePath + ".tif");
            await File.WriteAllTextAsync(basePath + ".geojson", map.GeoJson(), ct);
            await stdout.WriteLineAsync($"wrote {basePath}.tif (class per tile, colour table, label names) and {basePath}.geojson");
            return 0;
        });
        return cmd;
    }
}

using System.CommandLine;
using System.Globalization;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret chat`: a terminal dialogue over images and text that retrieves tiles when the model emits [RET].</summary>
public static class ChatCommands
{
    private const string Help = """
        /image PATH   add an image to the conversation (the model describes it)
        /find TEXT    retrieve tiles for TEXT, as `search` does (no dialogue)
        /reset        forget the conversation
        /quit         leave
        anything else is your turn, and the model answers: "what is in this image?", "can you see a river?",
        "show me storage tanks" (it answers with [RET] and retrieves tiles, which join the conversation as images),
        "describe the second one", "more like the first one", "which one shows a beach?"
        """;

    public static Command Build()
    {
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var k = new Option<int>("--k") { Description = "Tiles shown per retrieval", DefaultValueFactory = _ => 3 }.InRange(1, 50);
        var script = new Option<string?>("--script") { Description = "Read the turns from this file instead of the terminal (one per line)" };
        var noDb = new Option<bool>("--no-db") { Description = "No catalogue: dialogue only, retrieval is not available" };
        var chatAdapter = CommonOptions.ChatAdapter();
        var cmd = new Command("chat", "Talk with the model over images and text; [RET] in its answers retrieves tiles from the catalogue")
            { model, device, k, script, noDb, chatAdapter, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var topK = parse.GetValue(k);
            using var input = parse.GetValue(script) is { } file
                ? (File.Exists(file) ? new StreamReader(file) : throw new ArgumentException($"{file}: script file does not exist"))
                : null;
            var reader = input ?? Console.In;
            Npgsql.NpgsqlDataSource? ds = null;
            RsCapRetTileEncoder? encoder = null;
            try
            {
                Func<float[], int, CancellationToken, Task<IReadOnlyList<TileHit>>>? retrieve = null;
                Func<TileHit, CancellationToken, Task<RsCapRet.Core.RgbImage?>>? tileImage = null;
                var adapterFolder = CommonOptions.ResolveChatAdapter(parse.GetValue(chatAdapter));
                if (parse.GetValue(noDb)) encoder = CommonOptions.LoadEncoder(parse.GetValue(model), parse.GetValue(device)!, false, adapterFolder);
                else
                {
                    ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
                    var store = new CatalogStore(ds);
                    // With a catalogue: --model / RSCAPRET_MODEL, else the activated model, else models/default.
                    encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct, adapterFolder);
                    var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
                    retrieve = (vector, n, token) => store.SearchAsync(vector, n, new SearchFilter(ModelId: modelId), token);
                    var files = new RegisteredSceneFiles();
                    var size = encoder.InputSize;
                    // Retrieved tiles join the conversation as images when their scene file is still the one ingested.
                    tileImage = (hit, token) => TileLocalizer.TryReadImageAsync(store, files, hit.TileId, size, token);
                }
                var session = new ChatSession(encoder, retrieve, topK)
                { TileImage = tileImage, Calibration = RelevanceCalibration.LoadOrExplain(encoder.Directory).Calibration };
                var adapter = encoder.ChatAdapterVersion is { } v ? $" (its chat adapter v{v} answers; search is the model's)" : "";
                await output.WriteLineAsync($"chat with {encoder.Identity.Name} v{encoder.Identity.Version}{adapter}; /help lists the commands");
                if (session.ModelNote is { } note) await output.WriteLineAsync("note: " + note);
                while (!ct.IsCancellationRequested)
                {
                    if (input is null) await output.WriteAsync("> ");
                    var line = await reader.ReadLineAsync(ct);
                    if (line is null) break;
                    line = line.Trim();
                    if (line.Length == 0) continue;
                    if (input is not null) await output.WriteLineAsync("> " + line);
                    try
                    {
                        if (line is "/quit" or "/exit") break;
                        else if (line == "/help") await output.WriteLineAsync(Help);
                        else if (line == "/reset") { session.Reset(); await output.WriteLineAsync("(conversation cleared)"); }
                        else if (line.StartsWith("/image ", StringComparison.Ordinal))
                            await output.WriteLineAsync("model: " + session.AddImage(RasterImage.ReadRgb(line[7..].Trim(), maxSide: 4096)));
                        else if (line.StartsWith("/find ", StringComparison.Ordinal))
                            await output.WriteAsync(SearchOutput.Table(await session.FindAsync(line[6..].Trim(), ct)));
                        else if (line.StartsWith('/')) await output.WriteLineAsync($"unknown command '{line.Split(' ')[0]}'; /help lists the commands");
                        else
                        {
                            var reply = await session.AskAsync(line, ct);
                            await output.WriteLineAsync("model: " + (reply.Text.Length == 0 ? "(no text)" : reply.Text) + (reply.Retrieved ? " [RET]" : ""));
                            if (reply.Grounding is { } g)
                                await output.WriteLineAsync(FormattableString.Invariant(
                                    $"  (verdict from the shared space: image {g.Image} of {g.Scores.Count}, cosine {string.Join(" / ", g.Scores.Select(x => x.ToString("F3", CultureInfo.InvariantCulture)))}{(g.Relevance is { } r ? $", relevance {r:F3}, yes at {g.YesAt:F3}" : "")}; the decoder wrote '{g.DecoderAnswer}')"));
                            if (reply.Retrieved)
                                await output.WriteAsync(reply.Tiles is not { } tiles ? "(retrieval is not available without a catalogue)\n"
                                    : SearchOutput.Table(tiles) + (tiles.Hits.Count > 0 ? $"({reply.ImagesAdded} of {tiles.Hits.Count} tiles joined the conversation as images)\n" : ""));
                        }
                    }
                    catch (Exception e) when (e is RasterException or ArgumentException or InvalidOperationException or IOException)
                    {
                        // A bad turn (unreadable image, empty text) is reported and the dialogue goes on.
                        await output.WriteLineAsync($"error: {e.Message}");
                    }
                }
                return 0;
            }
            finally
            {
                encoder?.Dispose();
                if (ds is not null) await ds.DisposeAsync();
            }
        });
        return cmd;
    }
}

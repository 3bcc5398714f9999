using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// POST /api/chat (issue 34): the map page's dialogue with the serving model, stateless. The client sends the whole
/// conversation so far; the server replays it into a <see cref="ChatSession"/> and answers the last turn.
/// <code>
/// {"turns": [ {"image_tile": 123, "description": "..."}            a stored tile's imagery (description: optional)
///           | {"image_upload": "&lt;base64 PNG/JPEG/TIFF/WebP&gt;", "description": "..."}
///           | {"user": "text"}
///           | {"model": "text", "retrieved": true, "tiles": [ids]} ...],   an earlier answer, sent back
///  "k": 3}
/// </code>
/// An image turn's description is the one the server answered for it when the client sends it back, else the model
/// writes it again. A model turn's tiles rejoin the conversation as images after its text (those whose imagery can
/// still be read; tiles deleted or unreadable since are left out). The last turn is a user turn (the model answers it)
/// or an image (its description is the answer). Answer:
/// <c>{"text", "retrieved", "tiles": [{"tile_id", "scene_path", "caption", "score", "relevance", "thumbnail_url",
/// "footprint"}], "images_added", "description" (image turns), "grounding" (yes/no, "which one"), "model_note" (a
/// caption-only model)}</c>; "scene_path" is shown as search shows it.
/// Bounds (every one a problem naming the field in "field" and in the message): at most <see cref="MaxTurns"/> turns,
/// <see cref="MaxImages"/> image turns, <see cref="MaxUserTextLength"/> characters per user text,
/// <see cref="MaxModelTextLength"/> per model text or description, <see cref="MaxTilesPerAnswer"/> tiles per model
/// turn and <see cref="MaxReplayedTiles"/> in all, k 1..<see cref="MaxK"/> — 400; an upload over the upload limit of
/// POST /api/search/image (<see cref="SearchEndpoints.MaxUploadBytes"/> bytes decoded, RSCAPRET_MAX_UPLOAD_PIXELS,
/// RSCAPRET_MAX_UPLOAD_BANDS) or a body over <see cref="MaxBodyBytes"/> — 413, as that endpoint answers; an image_tile
/// that does not exist — 404; one whose imagery cannot be read — 410; a turn over the model's context — 400.
/// The model is used as every other request uses it (<see cref="WebContext.WithServingModelAsync{T}"/>: the model
/// queue, one request at a time on the encoder); retrieval searches the serving model's tiles as /api/search does,
/// with its relevance calibration.
/// </summary>
public static class ChatEndpoints
{
    public const int MaxTurns = 12;
    public const int MaxImages = 6;
    public const int MaxUserTextLength = 400;
    /// <summary>The model's own words sent back (an answer of at most 40 tokens, a description).</summary>
    public const int MaxModelTextLength = 1000;
    public const int MaxTilesPerAnswer = MaxK;
    /// <summary>Retrieved tiles a replay re-reads and encodes, over all model turns: the bound on its imagery work.</summary>
    public const int MaxReplayedTiles = 20;
    public const int MaxK = 10;
    public const int DefaultK = 3;
    /// <summary>One upload at the upload limit in base64 (4/3 of it) and the rest of the conversation.</summary>
    public const long MaxBodyBytes = 28_000_000;
    /// <summary>Uploads are read at most this wide or high: the model sees a few hundred pixels, and a replay holds up to <see cref="MaxImages"/>.</summary>
    public const int UploadMaxSide = 1024;

    public static void MapChatEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/api/chat", ChatAsync);
    }

    /// <summary>A refused request: its status, the field at fault and why.</summary>
    private sealed class ChatRefusal(int status, string field, string message) : Exception(message)
    {
        public int Status { get; } = status;
        public string Field { get; } = field;
    }

    private static ChatRefusal Bad(string field, string message) => new(StatusCodes.Status400BadRequest, field, $"{field}: {message}");

    private abstract record Turn(int Index);
    private sealed record TileTurn(int Index, long TileId, string? Description) : Turn(Index);
    private sealed record UploadTurn(int Index, byte[] Bytes, string? Description) : Turn(Index)
    {
        public RgbImage? Image { get; set; }
    }
    private sealed record UserTurn(int Index, string Text) : Turn(Index);
    private sealed record ModelTurn(int Index, string Text, bool Retrieved, IReadOnlyList<long> Tiles) : Turn(Index);

    private sealed record ChatAnswer(string Text, bool Retrieved, RankedHits? Tiles, int ImagesAdded, string? Description, ChatGrounding? Grounding = null)
    {
        /// <summary>What the user should know about the serving model (<see cref="ChatSession.ModelNote"/>).</summary>
        public string? ModelNote { get; init; }
    }

    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> ChatAsync(HttpRequest req, CatalogStore store, ModelCache models,
        WebContext web, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(req, ct);
            var (turns, k) = Parse(body);
            DecodeUploads(turns, web, ct);
            // Tiles that do not exist are refused before the model is waited for.
            foreach (var t in turns.OfType<TileTurn>())
                if (await store.GetTileAsync(t.TileId, ct) is null)
                    throw new ChatRefusal(StatusCodes.Status404NotFound, Field(t, "image_tile"), $"{Field(t, "image_tile")}: no tile {t.TileId}");
            // Every answer says what the user should know about the model, whichever turn it answers.
            var answer = await web.WithServingModelAsync(models,
                async model => (await ReplayAsync(turns, k, model, store, web, ct)) with { ModelNote = ChatSession.NoteFor(model.Encoder) }, ct);
            return TypedResults.Text(Json(answer, web), "application/json");
        }
        catch (ChatRefusal r)
        {
            var details = ApiProblem.Details(r.Status, r.Message);
            details.Extensions["field"] = r.Field;
            return TypedResults.Problem(details);
        }
    }

    private static string Field(Turn t, string member) => $"turns[{t.Index}].{member}";

    private static async Task<byte[]> ReadBodyAsync(HttpRequest req, CancellationToken ct)
    {
        var tooLarge = new ChatRefusal(StatusCodes.Status413PayloadTooLarge, "body", $"body: the request is larger than {MaxBodyBytes / 1_000_000} MB");
        if (req.ContentLength is > MaxBodyBytes) throw tooLarge;
        using var body = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = await req.Body.ReadAsync(buffer, ct)) > 0)
        {
            if (body.Length + n > MaxBodyBytes) throw tooLarge;
            body.Write(buffer, 0, n);
        }
        if (body.Length == 0) throw Bad("body", "the request body is empty: send {\"turns\": [...]}");
        return body.ToArray();
    }

    private static (List<Turn> Turns, int K) Parse(byte[] body)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body); }
        catch (JsonException e) { throw Bad("body", "not JSON: " + e.Message); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad("body", "must be a JSON object {\"turns\": [...], \"k\": 3}");
            var k = DefaultK;
            JsonElement? turnsElement = null;
            foreach (var p in root.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "turns": turnsElement = p.Value; break;
                    case "k":
                        if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out k) || k is < 1 or > MaxK)
                            throw Bad("k", $"must be a whole number from 1 to {MaxK}, got {p.Value.GetRawText()}");
                        break;
                    default: throw Bad(p.Name, "unknown member (the body has \"turns\" and \"k\")");
                }
            }
            if (turnsElement is not { ValueKind: JsonValueKind.Array } array) throw Bad("turns", "must be an array of turns");
            var count = array.GetArrayLength();
            if (count == 0) throw Bad("turns", "is empty: the last turn must be a user turn or an image");
            if (count > MaxTurns) throw Bad("turns", $"has {count} turns, more than the limit of {MaxTurns} (send the newest)");
            var turns = array.EnumerateArray().Select(ParseTurn).ToList();
            var images = turns.Count(t => t is TileTurn or UploadTurn);
            if (images > MaxImages) throw Bad("turns", $"has {images} images, more than the limit of {MaxImages} (send the newest)");
            var tiles = turns.OfType<ModelTurn>().Sum(t => t.Tiles.Count);
            if (tiles > MaxReplayedTiles)
                throw Bad("turns", $"its model turns list {tiles} tiles, more than the limit of {MaxReplayedTiles} (send the newest)");
            if (turns[^1] is ModelTurn last) throw Bad($"turns[{last.Index}]", "the last turn must be a user turn or an image, not a model turn");
            return (turns, k);
        }
    }

    private static readonly string[] Kinds = ["image_tile", "image_upload", "user", "model"];

    private static Turn ParseTurn(JsonElement e, int i)
    {
        var at = $"turns[{i}]";
        if (e.ValueKind != JsonValueKind.Object) throw Bad(at, "must be an object with one of " + string.Join(", ", Kinds));
        var members = e.EnumerateObject().ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
        var kinds = Kinds.Where(members.ContainsKey).ToList();
        if (kinds.Count != 1) throw Bad(at, "must have exactly one of " + string.Join(", ", Kinds) + (kinds.Count > 1 ? $", got {string.Join(" and ", kinds)}" : ""));
        var kind = kinds[0];
        string[] allowed = kind switch
        {
            "model" => ["model", "retrieved", "tiles"],
            "user" => ["user"],
            _ => [kind, "description"],
        };
        if (members.Keys.FirstOrDefault(m => !allowed.Contains(m)) is { } extra)
            throw Bad($"{at}.{extra}", $"is not a member of a {kind} turn (it has {string.Join(", ", allowed)})");
        var value = members[kind];
        switch (kind)
        {
            case "image_tile":
                return new TileTurn(i, TileId(value, $"{at}.image_tile"), Description(members, at));
            case "image_upload":
                return new UploadTurn(i, Upload(value, $"{at}.image_upload"), Description(members, at));
            case "user":
                var text = Text(value, $"{at}.user", MaxUserTextLength);
                if (string.IsNullOrWhiteSpace(text)) throw Bad($"{at}.user", "is empty");
                return new UserTurn(i, text);
            default:
                var answer = Text(value, $"{at}.model", MaxModelTextLength);
                var retrieved = false;
                if (members.TryGetValue("retrieved", out var r))
                    retrieved = r.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw Bad($"{at}.retrieved", $"must be true or false, got {r.GetRawText()}"),
                    };
                var tiles = new List<long>();
                if (members.TryGetValue("tiles", out var list))
                {
                    if (list.ValueKind != JsonValueKind.Array) throw Bad($"{at}.tiles", "must be an array of tile ids");
                    if (list.GetArrayLength() > MaxTilesPerAnswer) throw Bad($"{at}.tiles", $"has {list.GetArrayLength()} tiles, more than the limit of {MaxTilesPerAnswer}");
                    tiles.AddRange(list.EnumerateArray().Select((t, j) => TileId(t, $"{at}.tiles[{j}]")));
                    if (tiles.Count > 0 && !retrieved) throw Bad($"{at}.tiles", "tiles come with an answer that retrieved (\"retrieved\": true)");
                }
                return new ModelTurn(i, answer, retrieved, tiles);
        }
    }

    private static long TileId(JsonElement e, string field) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var id) && id > 0 ? id : throw Bad(field, $"must be a positive tile id, got {e.GetRawText()}");

    private static string Text(JsonElement e, string field, int maxLength)
    {
        if (e.ValueKind != JsonValueKind.String) throw Bad(field, $"must be a string, got {e.ValueKind.ToString().ToLowerInvariant()}");
        var text = e.GetString()!;
        if (text.Length > maxLength) throw Bad(field, $"has {text.Length} characters, more than the limit of {maxLength}");
        return text;
    }

    private static string? Description(Dictionary<string, JsonElement> members, string at) =>
        members.TryGetValue("description", out var d) && d.ValueKind != JsonValueKind.Null ? Text(d, $"{at}.description", MaxModelTextLength) : null;

    /// <summary>Base64 (a data: URL's prefix allowed), at most the upload limit decoded; the decoding of the image comes later.</summary>
    private static byte[] Upload(JsonElement e, string field)
    {
        if (e.ValueKind != JsonValueKind.String) throw Bad(field, "must be the image as a base64 string");
        var text = e.GetString()!;
        if (text.StartsWith("data:", StringComparison.Ordinal) && text.IndexOf(";base64,", StringComparison.Ordinal) is var comma and > 0)
            text = text[(comma + 8)..];
        var tooLarge = new ChatRefusal(StatusCodes.Status413PayloadTooLarge, field, $"{field}: the image is larger than {SearchEndpoints.MaxUploadBytes / 1_000_000} MB");
        if ((long)text.Length / 4 * 3 > SearchEndpoints.MaxUploadBytes + 3) throw tooLarge;
        var bytes = new byte[text.Length / 4 * 3 + 3];
        if (!Convert.TryFromBase64String(text, bytes, out var n)) throw Bad(field, "is not valid base64");
        if (n == 0) throw Bad(field, "is empty");
        if (n > SearchEndpoints.MaxUploadBytes) throw tooLarge;
        return bytes[..n];
    }

    /// <summary>Decodes the uploads as POST /api/search/image does: image drivers only, size and bands checked first, within a time budget.</summary>
    private static void DecodeUploads(List<Turn> turns, WebContext web, CancellationToken ct)
    {
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        budget.CancelAfter(SearchEndpoints.UploadDecodeBudget);
        foreach (var u in turns.OfType<UploadTurn>())
        {
            var field = Field(u, "image_upload");
            try
            {
                u.Image = RasterImage.ReadUploadedRgb(u.Bytes, SearchEndpoints.MaxUploadPixels, UploadMaxSide, field, web.Limits.MaxUploadBands, budget.Token);
            }
            catch (RasterException e) when (e.Message.Contains("more than the limit"))
            {
                var setting = e.Message.Contains(" bands, ") ? HostLimits.MaxUploadBandsVariable : "RSCAPRET_MAX_UPLOAD_PIXELS";
                throw new ChatRefusal(StatusCodes.Status413PayloadTooLarge, field, $"{e.Message} ({setting})");
            }
            catch (RasterException e) { throw Bad(field, "cannot be read: " + e.Problem); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new ChatRefusal(StatusCodes.Status413PayloadTooLarge, field,
                    $"{field}: the uploaded images took more than {SearchEndpoints.UploadDecodeBudget.TotalSeconds:0} s to decode");
            }
        }
    }

    /// <summary>The conversation replayed on the serving model (its encoder is this request's alone meanwhile), then the last turn answered.</summary>
    private static async Task<ChatAnswer> ReplayAsync(List<Turn> turns, int k, ServedModel model, CatalogStore store, WebContext web, CancellationToken ct)
    {
        var encoder = model.Encoder;
        Task<RgbImage?> ReadableTile(long id, CancellationToken token) => TileLocalizer.TryReadImageAsync(store, web.SceneFiles, id, encoder.InputSize, token);
        var session = new ChatSession(encoder, (vector, n, token) => store.SearchAsync(vector, n, new SearchFilter(ModelId: model.ModelId), token), k)
        {
            TileImage = (hit, token) => ReadableTile(hit.TileId, token),
            Calibration = RelevanceCalibration.LoadOrExplain(model.Directory).Calibration,
        };
        for (var i = 0; i < turns.Count; i++)
        {
            var turn = turns[i];
            var last = i == turns.Count - 1;
            string field = turn switch
            {
                TileTurn => Field(turn, turn is TileTurn { Description: not null } ? "description" : "image_tile"),
                UploadTurn u => Field(turn, u.Description is not null ? "description" : "image_upload"),
                UserTurn => Field(turn, "user"),
                _ => Field(turn, "model"),
            };
            try
            {
                switch (turn)
                {
                    case TileTurn t:
                        RgbImage image;
                        try { image = await TileLocalizer.ReadImageAsync(store, web.SceneFiles, t.TileId, encoder.InputSize, ct); }
                        catch (TileNotFoundException) { throw new ChatRefusal(StatusCodes.Status404NotFound, Field(t, "image_tile"), $"{Field(t, "image_tile")}: no tile {t.TileId}"); }
                        catch (TileImageryUnavailableException e)
                        {
                            throw new ChatRefusal(StatusCodes.Status410Gone, Field(t, "image_tile"),
                                $"{Field(t, "image_tile")}: the imagery of tile {t.TileId} cannot be read: {web.ScenePaths.Name(e.ScenePath)}: {web.ScenePaths.Redact(e.Problem, e.ScenePath)}");
                        }
                        // The model describes an image again unless the client sent its earlier description back.
                        var description = session.AddImage(image, last ? null : t.Description);
                        if (last) return new ChatAnswer(description, false, null, 1, description);
                        break;
                    case UploadTurn u:
                        var described = session.AddImage(u.Image!, last ? null : u.Description);
                        if (last) return new ChatAnswer(described, false, null, 1, described);
                        break;
                    case UserTurn q when last:
                        var reply = await session.AskAsync(q.Text, ct);
                        return new ChatAnswer(reply.Text, reply.Retrieved, reply.Tiles, reply.ImagesAdded, null, reply.Grounding);
                    case UserTurn q:
                        session.AddUserTurn(q.Text);
                        break;
                    case ModelTurn m:
                        session.AddAnswer(m.Text, m.Retrieved);
                        foreach (var id in m.Tiles)
                            if (await ReadableTile(id, ct) is { } tileImage) session.AddBareImage(tileImage);
                        break;
                }
            }
            catch (ArgumentException e) when (e is not TileNotFoundException)
            {
                // Over the model's context, or text the chat format refuses: the turn's fault, named.
                throw Bad(field, e.Message);
            }
        }
        throw new InvalidOperationException("unreachable: the last turn is checked to be a user turn or an image");
    }

    private static string Json(ChatAnswer answer, WebContext web)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("text", answer.Text);
            w.WriteBoolean("retrieved", answer.Retrieved);
            w.WriteStartArray("tiles");
            if (answer.Tiles is { } ranked)
                for (var i = 0; i < ranked.Hits.Count; i++)
                {
                    var h = ranked.Hits[i];
                    w.WriteStartObject();
                    w.WriteNumber("tile_id", h.TileId);
                    w.WriteString("scene_path", web.ScenePaths.Name(h.ScenePath));
                    if (h.Caption is null) w.WriteNull("caption"); else w.WriteString("caption", h.Caption);
                    w.WriteNumber("score", Math.Round(1 - h.Distance, 6));
                    if (ranked.Relevance[i] is { } r) w.WriteNumber("relevance", r); else w.WriteNull("relevance");
                    w.WriteString("thumbnail_url", $"/api/tiles/{h.TileId.ToString(CultureInfo.InvariantCulture)}/thumbnail.png");
                    w.WritePropertyName("footprint");
                    GeoJsonGeometry.Write(w, h.Footprint);
                    w.WriteEndObject();
                }
            w.WriteEndArray();
            if (answer.Tiles?.Note is { } note) w.WriteString("relevance_note", note);
            w.WriteNumber("images_added", answer.ImagesAdded);
            if (answer.Description is { } d) w.WriteString("description", d);
            if (answer.Grounding is { } g)
            {
                // How a yes/no or "which one" verdict was reached: the decoder's words, the image, the similarities.
                w.WriteStartObject("grounding");
                w.WriteString("decoder_answer", g.DecoderAnswer);
                w.WriteNumber("image", g.Image);
                w.WriteStartArray("scores");
                foreach (var score in g.Scores) w.WriteNumberValue(Math.Round(score, 6));
                w.WriteEndArray();
                if (g.Relevance is { } rel) w.WriteNumber("relevance", Math.Round(rel, 6)); else w.WriteNull("relevance");
                if (g.YesAt is { } yesAt) w.WriteNumber("yes_at", Math.Round(yesAt, 6)); else w.WriteNull("yes_at");
                w.WriteEndObject();
            }
            if (answer.ModelNote is { } modelNote) w.WriteString("model_note", modelNote);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// POST /api/chat (issue 34) on the tiny model over a small ingested scene: the mechanics of the stateless replay
/// (a question, an image turn, a conversation sent back with its descriptions and retrieved tiles), and every bound
/// answered as a problem naming the field. The tiny model's words are meaningless: only their shape is checked.
/// </summary>
public sealed class ChatApiTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-chat-api-");
    public void Dispose() => _dir.Delete(true);

    private static string UcmImage(int n) => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", $"{n}.jpg");

    /// <summary>A tiny model, a 4-tile scene ingested with it, a host serving it; the scene's tile ids.</summary>
    private async Task<(Microsoft.AspNetCore.Builder.WebApplication App, HttpClient Http, List<long> Tiles)> StartAsync(string name, int offset)
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model-" + name));
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
            await new SceneIngestor(new CatalogStore(db.DataSource), encoder).IngestAsync(TestScenes.SmallScene(_dir.FullName, name + ".tif", offset));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(2) };
        using var search = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=a%20farm&k=10"));
        var tiles = search.RootElement.GetProperty("features").EnumerateArray()
            .Where(f => f.GetProperty("properties").GetProperty("scene").GetString() == name + ".tif")
            .Select(f => f.GetProperty("properties").GetProperty("tile_id").GetInt64()).ToList();
        Assert.Equal(4, tiles.Count);
        return (app, http, tiles);
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, string ContentType)> PostAsync(HttpClient http, string json)
    {
        using var response = await http.PostAsync("/api/chat", new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(text);
        return (response.StatusCode, doc.RootElement.Clone(), response.Content.Headers.ContentType?.MediaType ?? "");
    }

    private static async Task<JsonElement> OkAsync(HttpClient http, object body)
    {
        var (status, answer, type) = await PostAsync(http, JsonSerializer.Serialize(body));
        Assert.True(status == HttpStatusCode.OK, $"{status}: {answer}");
        Assert.Equal("application/json", type);
        Assert.Equal(JsonValueKind.String, answer.GetProperty("text").ValueKind);
        Assert.True(answer.GetProperty("retrieved").ValueKind is JsonValueKind.True or JsonValueKind.False);
        Assert.Equal(JsonValueKind.Array, answer.GetProperty("tiles").ValueKind);
        Assert.True(answer.GetProperty("images_added").GetInt32() >= 0);
        return answer;
    }

    [Fact]
    public async Task QuestionsImagesAndReplayedConversationsAreAnswered()
    {
        var (app, http, tiles) = await StartAsync("chat-api", 100);
        try
        {
            // A first question.
            var first = await OkAsync(http, new { turns = new object[] { new { user = "show me a farm" } }, k = 2 });
            // The tiny model was trained on captions only, and every answer says so.
            Assert.Equal(ChatSession.CaptionOnlyNote, first.GetProperty("model_note").GetString());
            if (first.GetProperty("retrieved").GetBoolean())
            {
                var hits = first.GetProperty("tiles").EnumerateArray().ToList();
                Assert.Equal(2, hits.Count);
                foreach (var h in hits)
                {
                    Assert.Contains(h.GetProperty("tile_id").GetInt64(), tiles);
                    Assert.Equal("chat-api.tif", h.GetProperty("scene_path").GetString());
                    Assert.Equal($"/api/tiles/{h.GetProperty("tile_id").GetInt64()}/thumbnail.png", h.GetProperty("thumbnail_url").GetString());
                    Assert.Equal("Polygon", h.GetProperty("footprint").GetProperty("type").GetString());
                    Assert.True(h.TryGetProperty("relevance", out _) && h.TryGetProperty("caption", out _) && h.TryGetProperty("score", out _));
                }
            }
            else Assert.Empty(first.GetProperty("tiles").EnumerateArray());

            // An image turn: the model's description is the answer.
            var image = await OkAsync(http, new { turns = new object[] { new { image_tile = tiles[0] } } });
            var description = image.GetProperty("description").GetString()!;
            Assert.Equal(description, image.GetProperty("text").GetString());
            Assert.Equal(1, image.GetProperty("images_added").GetInt32());
            Assert.False(image.GetProperty("retrieved").GetBoolean());

            // The conversation sent back: the image with its description, the question, an answer that retrieved two
            // tiles (they rejoin as images), a follow-up.
            await OkAsync(http, new { turns = new object[] { new { image_tile = tiles[0], description }, new { user = "what is in this image?" } } });
            var replay = await OkAsync(http, new
            {
                turns = new object[]
                {
                    new { image_tile = tiles[0], description }, new { user = "show me similar places" },
                    new { model = "here are similar places", retrieved = true, tiles = new[] { tiles[1], tiles[2] } },
                    new { user = "describe the second one" },
                },
                k = 3,
            });
            Assert.False(replay.TryGetProperty("description", out _));   // a question's answer has no description

            // An uploaded JPEG (base64, also as a data: URL) is described.
            var jpeg = Convert.ToBase64String(await File.ReadAllBytesAsync(UcmImage(150)));
            var upload = await OkAsync(http, new { turns = new object[] { new { image_upload = jpeg } } });
            Assert.Equal(1, upload.GetProperty("images_added").GetInt32());
            await OkAsync(http, new
            {
                turns = new object[]
                {
                    new { image_upload = "data:image/jpeg;base64," + jpeg, description = upload.GetProperty("description").GetString() },
                    new { user = "is there a river?" },
                },
            });
        }
        finally { await app.StopAsync(); http.Dispose(); }
    }

    private static JsonObject User(string text) => new JsonObject { ["user"] = text };

    [Fact]
    public async Task EveryBoundIsAProblemThatNamesItsField()
    {
        var (app, http, tiles) = await StartAsync("chat-bounds", 300);
        try
        {
            async Task Refused(string json, HttpStatusCode status, string field, string message)
            {
                var (code, body, type) = await PostAsync(http, json);
                Assert.True(code == status, $"{json[..Math.Min(200, json.Length)]}: {code} {body}");
                Assert.Equal(ApiProblem.ContentType, type);
                Assert.Equal(field, body.GetProperty("field").GetString());
                Assert.StartsWith(field + ": ", body.GetProperty("error").GetString());
                Assert.Contains(message, body.GetProperty("error").GetString());
            }
            string Turns(IEnumerable<JsonNode> turns, string extra = "") =>
                "{\"turns\": " + new JsonArray(turns.Select(t => (JsonNode?)t).ToArray()).ToJsonString() + extra + "}";

            var image = new JsonObject { ["image_tile"] = tiles[0], ["description"] = "a farm" };
            var answer = new JsonObject { ["model"] = "no" };
            await Refused(Turns(Enumerable.Range(0, 13).Select(i => i % 2 == 0 ? User("is it a farm") : answer.DeepClone())),
                HttpStatusCode.BadRequest, "turns", "13 turns, more than the limit of 12");
            await Refused(Turns(Enumerable.Range(0, 7).Select(_ => image.DeepClone()).Append(User("which one"))),
                HttpStatusCode.BadRequest, "turns", "7 images, more than the limit of 6");
            await Refused(Turns([User(new string('a', 401))]), HttpStatusCode.BadRequest, "turns[0].user", "401 characters, more than the limit of 400");
            await Refused(Turns([User("  ")]), HttpStatusCode.BadRequest, "turns[0].user", "is empty");
            await Refused(Turns([User("a farm")], ", \"k\": 0"), HttpStatusCode.BadRequest, "k", "from 1 to 10");
            await Refused(Turns([User("a farm")], ", \"k\": 11"), HttpStatusCode.BadRequest, "k", "from 1 to 10");
            await Refused(Turns([User("a farm")], ", \"k\": \"3\""), HttpStatusCode.BadRequest, "k", "from 1 to 10");
            await Refused(Turns([]), HttpStatusCode.BadRequest, "turns", "is empty");
            await Refused("{\"k\": 3}", HttpStatusCode.BadRequest, "turns", "must be an array");
            await Refused("{\"turns\": [], \"history\": 1}", HttpStatusCode.BadRequest, "history", "unknown member");
            await Refused("{\"turns\": [", HttpStatusCode.BadRequest, "body", "not JSON");
            await Refused("", HttpStatusCode.BadRequest, "body", "is empty");
            await Refused(Turns([User("hi"), answer.DeepClone()]), HttpStatusCode.BadRequest, "turns[1]", "the last turn must be a user turn or an image");
            await Refused(Turns([new JsonObject { ["user"] = "hi", ["model"] = "hello" }]), HttpStatusCode.BadRequest, "turns[0]", "exactly one of");
            await Refused(Turns([new JsonObject { ["user"] = "hi", ["mood"] = "glad" }]), HttpStatusCode.BadRequest, "turns[0].mood", "not a member of a user turn");
            await Refused(Turns([new JsonObject { ["user"] = 5 }]), HttpStatusCode.BadRequest, "turns[0].user", "must be a string");
            await Refused(Turns([new JsonObject { ["model"] = "x", ["retrieved"] = true, ["tiles"] = new JsonArray(Enumerable.Range(0, 11).Select(_ => (JsonNode?)tiles[0]).ToArray()) }, User("hi")]),
                HttpStatusCode.BadRequest, "turns[0].tiles", "11 tiles, more than the limit of 10");
            await Refused(Turns(Enumerable.Range(0, 3).Select(_ => (JsonNode)new JsonObject
            {
                ["model"] = "x", ["retrieved"] = true,
                ["tiles"] = new JsonArray(Enumerable.Range(0, 8).Select(_ => (JsonNode?)tiles[0]).ToArray())
            }).Append(User("hi"))),
                HttpStatusCode.BadRequest, "turns", "24 tiles, more than the limit of 20");
            await Refused(Turns([new JsonObject { ["model"] = "x", ["tiles"] = new JsonArray(tiles[0]) }, User("hi")]),
                HttpStatusCode.BadRequest, "turns[0].tiles", "\"retrieved\": true");
            await Refused(Turns([new JsonObject { ["model"] = "x", ["retrieved"] = true, ["tiles"] = new JsonArray(-4) }, User("hi")]),
                HttpStatusCode.BadRequest, "turns[0].tiles[0]", "positive tile id");
            await Refused(Turns([new JsonObject { ["image_tile"] = "12" }]), HttpStatusCode.BadRequest, "turns[0].image_tile", "positive tile id");
            await Refused(Turns([new JsonObject { ["image_tile"] = 999_999_999 }]), HttpStatusCode.NotFound, "turns[0].image_tile", "no tile 999999999");
            await Refused(Turns([new JsonObject { ["image_upload"] = "not base64!" }]), HttpStatusCode.BadRequest, "turns[0].image_upload", "not valid base64");
            await Refused(Turns([new JsonObject { ["image_upload"] = Convert.ToBase64String("hello, not an image"u8) }]),
                HttpStatusCode.BadRequest, "turns[0].image_upload", "cannot be read");
            // Over the tiny model's context (64 positions): the turn is named, no 500.
            await Refused(Turns([User(string.Join(' ', Enumerable.Repeat("storage tanks near a river", 12)))]),
                HttpStatusCode.BadRequest, "turns[0].user", "tokens");
            // An upload over the upload limit of POST /api/search/image, and a body over the chat's.
            var big = Convert.ToBase64String(new byte[SearchEndpoints.MaxUploadBytes + 10]);
            await Refused(Turns([new JsonObject { ["image_upload"] = big }]), HttpStatusCode.RequestEntityTooLarge, "turns[0].image_upload", "larger than 20 MB");
            await Refused(Turns([User("hi")], ", \"pad\": \"" + new string(' ', (int)ChatEndpoints.MaxBodyBytes) + "\""),
                HttpStatusCode.RequestEntityTooLarge, "body", "larger than 28 MB");

            // After all that the host still answers.
            await OkAsync(http, new { turns = new object[] { new { user = "a farm" } } });
        }
        finally { await app.StopAsync(); http.Dispose(); }
    }
}

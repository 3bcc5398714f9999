using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// The map page's chat panel (issue 34; tests/web/map-chat.mjs in headless Chromium) on the tiny model and on the
/// shipped one over a small ingested scene, at 1400x900 and 390x844: a question answered in the transcript, a search result and an upload added
/// as images, the conversation sent back with their descriptions, no console errors and no 4xx/5xx. The tiny model's
/// words are meaningless: the mechanics are checked, not the words. Screenshots are left beside the test binary
/// (map-chat[-default]-1400.png, -390.png; RSCAPRET_CHAT_SCREENSHOTS sets their folder).
/// </summary>
public sealed class MapPageChatTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-map-chat-");
    public void Dispose() => _dir.Delete(true);

    /// <summary>The tiny model (it never retrieves): the dialogue's mechanics, fast.</summary>
    [Fact]
    public async Task TheChatPanelAnswersAndCarriesTheConversationInHeadlessChromium()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var f = await RunPageAsync(model, TestScenes.SmallScene(_dir.FullName, "chat-page.tif", 500), "map-chat", retrieves: false);
        Assert.False(f.GetProperty("firstRetrieved").GetBoolean());
        // Trained on captions only: the page says so once, as text.
        Assert.Equal(1, f.GetProperty("notes").GetInt32());
        Assert.Equal("Note: " + ChatSession.CaptionOnlyNote, f.GetProperty("noteText").GetString());
    }

    /// <summary>The shipped model (its chat adapter), which answers "show me a farm" with [RET]: retrieved tiles listed with thumbnails, one selected on the map.</summary>
    [Fact]
    public async Task RetrievedTilesAreListedAndSelectOnTheMap()
    {
        // 672² px at 5 m: nine tiles of the shipped model's 224 px.
        var f = await RunPageAsync(Path.Combine(RepositoryPaths.FindRoot(), "models", "default"), TestScenes.Cut(Path.Combine(_dir.FullName, "chat-default.tif"), 672, 0),
            "map-chat-default", retrieves: true);
        Assert.True(f.GetProperty("firstRetrieved").GetBoolean());
        Assert.Equal(3, f.GetProperty("transcriptTiles").GetInt32());
        Assert.Equal(1, f.GetProperty("selectedOnMap").GetInt32());
        // Its chat adapter was trained on dialogues: no note.
        Assert.Equal(0, f.GetProperty("notes").GetInt32());
    }

    private async Task<JsonElement> RunPageAsync(string model, string scene, string shots, bool retrieves)
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
            await new SceneIngestor(new CatalogStore(db.DataSource), encoder).IngestAsync(scene);
        var upload = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", "150.jpg");

        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        var prefix = Path.Combine(Environment.GetEnvironmentVariable("RSCAPRET_CHAT_SCREENSHOTS") is { Length: > 0 } p ? p : AppContext.BaseDirectory, shots);
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node",
                [Path.Combine(root, "tests", "web", "map-chat.mjs"), baseUrl, prefix, upload, retrieves ? "retrieves" : "mechanics"], root, TimeSpan.FromSeconds(300));
            Assert.True(code == 0, $"tests/web/map-chat.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement.Clone();
        Assert.StartsWith("youshow me a farm", f.GetProperty("userBubble").GetString());
        Assert.StartsWith("model", f.GetProperty("firstReply").GetString());
        Assert.StartsWith("model", f.GetProperty("phoneReply").GetString());
        Assert.Equal(3, f.GetProperty("chatButtons").GetInt32());
        // Two images joined (the tile, the upload); the follow-up carried the whole conversation.
        Assert.Equal(2, f.GetProperty("imageBubbles").GetInt32());
        Assert.Equal(["user", "model", "image_tile", "user"], f.GetProperty("followUpTurns").EnumerateArray().Select(t => t.GetString()!));
        // user, model, tile, user, model, upload: the page's conversation.
        Assert.Equal(6, f.GetProperty("desktopTurns").GetInt32());
        // An image dropped on the panel joined it too (outlined while dragged), and started no image search.
        Assert.True(f.GetProperty("panelOutlinedWhileDragging").GetBoolean());
        Assert.False(f.GetProperty("outlineAfterDrop").GetBoolean());
        Assert.Equal(7, f.GetProperty("afterDropTurns").GetInt32());
        Assert.Equal(0, f.GetProperty("imageSearchesAfterDrop").GetInt32());
        Assert.True(File.Exists(prefix + "-1400.png") && File.Exists(prefix + "-390.png"));
        return f;
    }
}

using System.Text.Json.Nodes;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>`rscapret chat` and its session on the tiny model, with a live catalogue to retrieve from.</summary>
public sealed class ChatTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-chat-");
    public void Dispose() => _dir.Delete(true);

    private static string UcmImage(int n) => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", $"{n}.jpg");

    [Fact]
    public async Task AScriptedDialogueDescribesImagesRetrievesTilesAndSurvivesBadTurns()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
            await new SceneIngestor(new CatalogStore(db.DataSource), encoder).IngestAsync(TestScenes.SmallScene(_dir.FullName, "chat.tif", 100));
        var script = Path.Combine(_dir.FullName, "turns.txt");
        await File.WriteAllLinesAsync(script, [$"/image {UcmImage(150)}", "/find a farm with fields", "what is next to it", "/image /no/such/file.png", "/bogus", "/reset", "/quit", "never read"]);
        var (output, error) = (new StringWriter(), new StringWriter());
        var code = await CliApp.RunAsync(["chat", "--model", model, "--device", "cpu", "--script", script, "--k", "2", "--db", db.ConnectionString], output, error);
        var text = output.ToString();
        Assert.True(code == 0, error.ToString() + text);
        Assert.Contains($"> /image {UcmImage(150)}\nmodel: ", text);
        Assert.DoesNotContain("context", text);
        // /find prints the catalogue's table with k rows (the tiny scene has 4 tiles).
        var table = text[text.IndexOf("> /find", StringComparison.Ordinal)..text.IndexOf("> what is next", StringComparison.Ordinal)];
        Assert.Contains("score", table);
        Assert.Equal(2, table.Split('\n').Count(l => l.Contains("chat.tif")));
        Assert.Contains("> what is next to it\nmodel: ", text);
        Assert.Contains("error: /no/such/file.png", text);
        Assert.Contains("unknown command '/bogus'", text);
        Assert.Contains("(conversation cleared)", text);
        Assert.DoesNotContain("never read", text);
    }

    [Fact]
    public async Task ACaptionOnlyModelIsNamedAsSuchAtTheStartAndADialogueTrainedOneIsNot()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model-note"));
        var script = Path.Combine(_dir.FullName, "question.txt");
        await File.WriteAllLinesAsync(script, ["what is in this image?"]);
        async Task<string> ChatAsync()
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            var code = await CliApp.RunAsync(["chat", "--model", model, "--device", "cpu", "--script", script, "--no-db"], output, error);
            Assert.True(code == 0, error.ToString() + output);
            return output.ToString();
        }
        var captionOnly = await ChatAsync();
        Assert.Contains("\nnote: " + ChatSession.CaptionOnlyNote + "\n", captionOnly);
        Assert.True(captionOnly.IndexOf("note: ", StringComparison.Ordinal) < captionOnly.IndexOf("> what is in", StringComparison.Ordinal));
        var config = Path.Combine(model, RsCapRetConfig.FileName);
        var json = JsonNode.Parse(await File.ReadAllTextAsync(config))!.AsObject();
        json["dialogue"] = true;
        await File.WriteAllTextAsync(config, json.ToJsonString());
        Assert.DoesNotContain("note: ", await ChatAsync());
    }

    [Fact]
    public async Task TheSessionKeepsTheNewestTurnsThatFitTheContextAndRetrievesOnRet()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model2"));
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        var retrieved = new List<float[]>();
        var session = new ChatSession(encoder, (v, k, _) => { retrieved.Add(v); return Task.FromResult<IReadOnlyList<TileHit>>([]); }) { MaxNewTokens = 8 };
        var context = encoder.Model.Llm.Config.MaxPositionEmbeddings;
        for (var i = 0; i < 40; i++) await session.AskAsync("a dense residential area with many houses and green trees");
        // Forty turns of about twenty tokens each cannot all fit: the oldest went, the prompt still fits.
        Assert.InRange(session.Turns, 1, context);
        await session.FindAsync("a river");
        Assert.NotEmpty(retrieved);
        Assert.All(retrieved, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 3));
        await Assert.ThrowsAsync<ArgumentException>(() => session.AskAsync("  "));
    }

    [Fact]
    public async Task AModelThatReadsTurnsIsToldEachTurnAsItWasTrained()
    {
        var reader = TinyTextEncoder.Save(Path.Combine(_dir.FullName, "tiny-bert"), "a farm find river show me the with fields describe it".Split(' '));
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "reading"), turnEncoder: reader);
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        Assert.True(encoder.Model.ReadsTurns);
        var session = new ChatSession(encoder, retrieve: null) { MaxNewTokens = 8 };
        var first = await session.AskAsync("Find a  river");
        var second = await session.AskAsync("describe it");

        // The training format (RsCapRetTrainer.DialogueSequence): each user turn's reading, then its tokens; the answer after BOS.
        var tok = encoder.Tokenizer;
        List<PromptSegment> Turn(string words) => [new TurnReadingSegment(words), new TextSegment(ChatFormat.UserTurn(tok, words))];
        int[] Ids(IEnumerable<PromptSegment> prompt) =>
            [.. encoder.Model.Continue([.. prompt, new TextSegment([tok.BosId])], session.NewTokens).TokenIds.Where(t => t != encoder.Model.RetTokenId && t != tok.EosId)];
        string Answer(IEnumerable<PromptSegment> prompt) => RsCapRetTileEncoder.CleanCaption(tok.Decode(Ids(prompt)));
        Assert.Equal(Answer(Turn("find a river")), first.Text);
        // The answer joins the prompt as the ids the model wrote.
        int[] firstAnswer = [tok.BosId, .. Ids(Turn("find a river")), .. first.Retrieved ? new[] { encoder.Model.RetTokenId } : [], tok.EosId];
        Assert.Equal(Answer([.. Turn("find a river"), new TextSegment(firstAnswer), .. Turn("describe it")]), second.Text);
        // The session's prompt is that format: a reading before each user turn's tokens.
        Assert.Equal(["reading:find a river", "user", "answer", "reading:describe it", "user", "answer"],
            session.Prompt.Select(p => p switch
            {
                TurnReadingSegment r => "reading:" + r.Text,
                TextSegment t when t.TokenIds.SequenceEqual(ChatFormat.UserTurn(tok, "find a river")) || t.TokenIds.SequenceEqual(ChatFormat.UserTurn(tok, "describe it")) => "user",
                _ => "answer",
            }));
        // The chat encodes each turn's words once: its reading carries their vector, and embeds as when read afresh.
        var reading = session.Prompt.OfType<TurnReadingSegment>().First();
        Assert.Equal(encoder.Model.TurnSentenceVector("find a river"), reading.SentenceVector);
        using var cached = encoder.Model.EmbedPrompt([reading]);
        using var fresh = encoder.Model.EmbedPrompt([reading with { SentenceVector = null }]);
        Assert.True(cached.allclose(fresh, rtol: 1e-5, atol: 1e-6));
        Assert.True(cached.abs().max().item<float>() > 0);
        // A reading is one position the decoder attends to: the next token's scores change with it.
        using var withReading = encoder.Model.Llm.ForwardEmbeds(encoder.Model.EmbedPrompt(Turn("find a river")));
        using var without = encoder.Model.Llm.ForwardEmbeds(encoder.Model.EmbedPrompt([new TextSegment(ChatFormat.UserTurn(tok, "find a river"))]));
        Assert.False(withReading.Logits.select(1, -1).allclose(without.Logits.select(1, -1), rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public async Task AFolderWithAChatAdapterAnswersWithItAndSearchesWithItsOwnModel()
    {
        var folder = TinyModelFolder.Create(Path.Combine(_dir.FullName, "adapted"));
        // A chat adapter as a run writes it (RsCapRetTrainer.ExportChatAdapter): random updates, a changed [RET] projection.
        using (var trained = RsCapRetModel.Load(folder))
        {
            trained.Llm.AddLowRankAdapters(rank: 2, alpha: 2, seed: 5);
            using (TorchSharp.torch.no_grad())
            {
                foreach (var (name, t) in trained.Llm.AdapterTensors().Where(t => t.Name.EndsWith(".lora_b", StringComparison.Ordinal))) t.normal_(0, 0.5);
                foreach (var (name, p) in trained.Heads.named_parameters().Where(p => p.name.StartsWith("ret_to_shared.", StringComparison.Ordinal))) p.add_(TorchSharp.torch.randn_like(p));
            }
            new ChatAdapterConfig { Version = "adapter-test", Rank = 2, Alpha = 2, BaseHeadsSha256 = RsCapRetModel.HeadsSha256(folder) }
                .Write(Path.Combine(folder, "chat"), trained);
        }
        var config = RsCapRetConfig.Load(folder);
        (config with { Chat = "chat" }).Save(folder);

        using var encoder = RsCapRetTileEncoder.Load(folder, "cpu");
        Assert.Equal("adapter-test", encoder.ChatAdapterVersion);
        Assert.True(encoder.DialogueTrained);                 // the chat was trained on dialogues though the model was not
        Assert.Null(ChatSession.NoteFor(encoder));
        Assert.NotSame(encoder.Model, encoder.ChatModel);
        var searched = new List<float[]>();
        var session = new ChatSession(encoder, (v, k, ct) => { searched.Add(v); return Task.FromResult<IReadOnlyList<TileHit>>([]); }) { MaxNewTokens = 8 };

        // The answer is the adapter's: the chat model's continuation of the turn, not the folder's model's.
        var reply = await session.AskAsync("show me a farm");
        var tok = encoder.Tokenizer;
        List<PromptSegment> prompt = [new TextSegment(ChatFormat.UserTurn(tok, "show me a farm")), new TextSegment([tok.BosId])];
        string Answer(RsCapRetModel m) => RsCapRetTileEncoder.CleanCaption(tok.Decode(
            [.. m.Continue(prompt, session.NewTokens).TokenIds.Where(t => t != m.RetTokenId && t != tok.EosId)]));
        Assert.Equal(Answer(encoder.ChatModel), reply.Text);
        using var chatLogits = encoder.ChatModel.Llm.ForwardEmbeds(encoder.ChatModel.EmbedPrompt(prompt));
        using var modelLogits = encoder.Model.Llm.ForwardEmbeds(encoder.Model.EmbedPrompt(prompt));
        Assert.False(chatLogits.Logits.allclose(modelLogits.Logits, rtol: 1e-3, atol: 1e-4), "the adapter changes what the decoder computes");

        // /find is search: the folder's own [RET] vector of the words, not the chat's.
        await session.FindAsync("a farm");
        Assert.Equal(encoder.EmbedText("a farm"), searched[^1]);
        using var ids = TorchSharp.torch.tensor(tok.EncodeForRetrieval("a farm").Select(t => (long)t).ToArray()).unsqueeze(0);
        Assert.False(encoder.ChatModel.RetEmbedding(ids).allclose(encoder.Model.RetEmbedding(ids), rtol: 1e-3, atol: 1e-4));

        // The chat model loads on the first turn that needs it, also when that turn is an image, whose work runs in a
        // dispose scope: the conversation goes on after it (the model's tensors were once freed with that scope).
        using (var fresh = RsCapRetTileEncoder.Load(folder, "cpu"))
        {
            var imageFirst = new ChatSession(fresh, (v, k, ct) => Task.FromResult<IReadOnlyList<TileHit>>([])) { MaxNewTokens = 8 };
            var grey = RgbImage.Create(64, 64);
            Array.Fill(grey.Pixels, (byte)128);
            imageFirst.AddImage(grey);
            var afterImage = await imageFirst.AskAsync("what is in this image?");
            Assert.NotNull(afterImage.Text);
            Assert.Equal(Answer(fresh.ChatModel), Answer(encoder.ChatModel));   // the same adapter, intact
        }

        // A broken adapter is reported when the folder loads, naming its file: missing weights, a wrong format.
        var adapterFile = Path.Combine(folder, "chat", "adapter.safetensors");
        File.Move(adapterFile, adapterFile + ".moved");
        Assert.Contains("names weights 'adapter.safetensors', which are not in",
            Assert.Throws<RsCapRet.Model.Checkpoints.CheckpointException>(() => RsCapRetTileEncoder.Load(folder, "cpu")).Message);
        File.WriteAllText(Path.Combine(folder, "chat", ChatAdapterConfig.FileName), "{\"format\": \"something-else\"}");
        var e = Assert.Throws<RsCapRet.Model.Checkpoints.CheckpointException>(() => RsCapRetTileEncoder.Load(folder, "cpu"));
        Assert.Contains(Path.Combine("chat", ChatAdapterConfig.FileName), e.Message);
        Assert.Contains("format", e.Message);
    }

    [Fact]
    public async Task AChatAdapterShippedApartAnswersOnlyForTheModelItWasTrainedOn()
    {
        var folder = TinyModelFolder.Create(Path.Combine(_dir.FullName, "base"));
        var adapterDir = Path.Combine(_dir.FullName, "adapters", "apart");
        using (var trained = RsCapRetModel.Load(folder))
        {
            trained.Llm.AddLowRankAdapters(rank: 2, alpha: 2, seed: 5);
            using (TorchSharp.torch.no_grad())
                foreach (var (_, t) in trained.Llm.AdapterTensors().Where(t => t.Name.EndsWith(".lora_b", StringComparison.Ordinal))) t.normal_(0, 0.5);
            new ChatAdapterConfig { Version = "apart", Rank = 2, Alpha = 2, BaseHeadsSha256 = RsCapRetModel.HeadsSha256(folder), Quality = "a test adapter, measured nothing" }
                .Write(adapterDir, trained);
        }
        Assert.Null(RsCapRetConfig.Load(folder).Chat);   // the model folder names no adapter: it is given apart

        using (var encoder = RsCapRetTileEncoder.Load(folder, "cpu", chatAdapter: adapterDir))
        {
            Assert.Equal("apart", encoder.ChatAdapterVersion);
            Assert.True(encoder.DialogueTrained);
            Assert.Equal("the chat adapter vapart answers: a test adapter, measured nothing", ChatSession.NoteFor(encoder));
            var tok = encoder.Tokenizer;
            List<PromptSegment> prompt = [new TextSegment(ChatFormat.UserTurn(tok, "show me a farm")), new TextSegment([tok.BosId])];
            using var chatLogits = encoder.ChatModel.Llm.ForwardEmbeds(encoder.ChatModel.EmbedPrompt(prompt));
            using var modelLogits = encoder.Model.Llm.ForwardEmbeds(encoder.Model.EmbedPrompt(prompt));
            Assert.False(chatLogits.Logits.allclose(modelLogits.Logits, rtol: 1e-3, atol: 1e-4), "the adapter given apart writes the chat's answers");
        }

        var script = Path.Combine(_dir.FullName, "apart.txt");
        await File.WriteAllLinesAsync(script, ["what is in this image?"]);
        async Task<(int Code, string Out, string Err)> ChatAsync(string model, string adapter)
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            var code = await CliApp.RunAsync(["chat", "--model", model, "--device", "cpu", "--script", script, "--no-db", "--chat-adapter", adapter], output, error);
            return (code, output.ToString(), error.ToString());
        }
        var (ok, text, err) = await ChatAsync(folder, adapterDir);
        Assert.True(ok == 0, err + text);
        Assert.Contains("(its chat adapter vapart answers; search is the model's)", text);
        Assert.Contains("\nnote: the chat adapter vapart answers: a test adapter, measured nothing\n", text);
        Assert.DoesNotContain(ChatSession.CaptionOnlyNote, text);
        Assert.Contains("> what is in this image?\nmodel: ", text);

        // Another model (other heads): the command refuses the adapter, naming its chat.json and why.
        var other = TinyModelFolder.Create(Path.Combine(_dir.FullName, "other"), seed: 99);
        Assert.NotEqual(RsCapRetModel.HeadsSha256(folder), RsCapRetModel.HeadsSha256(other));
        var (refused, _, why) = await ChatAsync(other, adapterDir);
        Assert.Equal(CommandAction.UserError, refused);
        Assert.Contains(Path.Combine(adapterDir, ChatAdapterConfig.FileName), why);
        Assert.Contains("an adapter only fits the decoder it adapts", why);
        var (missing, _, gone) = await ChatAsync(folder, Path.Combine(_dir.FullName, "no-such-adapter"));
        Assert.Equal(CommandAction.UserError, missing);
        Assert.Contains("no-such-adapter: chat adapter folder does not exist", gone);

        // A server's models (serve --chat-adapter): a model the adapter does not fit keeps its own chat, and its note says why.
        using (var cache = new ModelCache("cpu", adapterDir))
        {
            Assert.Equal("apart", cache.Get(folder).ChatAdapterVersion);
            var served = cache.Get(other);
            Assert.Null(served.ChatAdapterVersion);
            Assert.Same(served.Model, served.ChatModel);
            var note = ChatSession.NoteFor(served)!;
            Assert.StartsWith($"the chat adapter {adapterDir} is not used with this model: {Path.Combine(adapterDir, ChatAdapterConfig.FileName)}: was trained on the model whose heads hash", note);
            Assert.EndsWith(ChatSession.CaptionOnlyNote, note);
        }
        // A worker or server given a missing adapter (RSCAPRET_CHAT_ADAPTER mistyped) still ingests and searches; the chat says why.
        using (var cache = new ModelCache("cpu", Path.Combine(_dir.FullName, "typo")))
        {
            var served = cache.Get(folder);
            Assert.Null(served.ChatAdapterVersion);
            Assert.Contains("typo: chat adapter folder does not exist", ChatSession.NoteFor(served));
        }

        // An adapter whose turn reader (an imported backbone) is not on this machine: given to chat, an error naming the
        // folder and how to import it; a model folder's own, or given to a server, left out with why (ingestion and
        // search never need it: the Docker image's smoke run captions without the imported backbones).
        var withReader = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(adapterDir, ChatAdapterConfig.FileName)))!.AsObject();
        withReader["turn_encoder"] = "backbone:no-such-encoder";
        await File.WriteAllTextAsync(Path.Combine(adapterDir, ChatAdapterConfig.FileName), withReader.ToJsonString());
        Assert.Contains("text encoder folder does not exist", Assert.Throws<RsCapRet.Model.Checkpoints.CheckpointException>(
            () => RsCapRetTileEncoder.Load(folder, "cpu", chatAdapter: adapterDir)).Message);
        using (var cache = new ModelCache("cpu", adapterDir))
            Assert.Contains("text encoder folder does not exist", cache.Get(folder).ChatAdapterSkipped);
        CopyFolder(adapterDir, Path.Combine(folder, "chat"));
        (RsCapRetConfig.Load(folder) with { Chat = "chat" }).Save(folder);
        using (var own = RsCapRetTileEncoder.Load(folder, "cpu"))
        {
            Assert.Null(own.ChatAdapterVersion);
            Assert.Same(own.Model, own.ChatModel);
            Assert.StartsWith("the chat adapter vapart is not used: ", own.ChatAdapterSkipped);
            Assert.Contains("text encoder folder does not exist", ChatSession.NoteFor(own));
            Assert.EndsWith(ChatSession.CaptionOnlyNote, ChatSession.NoteFor(own));
        }

        // Only the dialogue evaluation talks with a chat adapter.
        var evalError = new StringWriter();
        Assert.Equal(CommandAction.UserError, await CliApp.RunAsync(
            ["evaluate", "--model", folder, "--dataset", "x", "--split", "val", "--chat-adapter", adapterDir], new StringWriter(), evalError));
        Assert.Contains("--chat-adapter: only the dialogue evaluation (--dialogue) talks with a chat adapter", evalError.ToString());
    }

    [Fact]
    public async Task TheDefaultModelsChatAdapterFitsItAndAnswersInTheKindAskedAfterAnExchangeToo()
    {
        var model = Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        Assert.Equal("chat", RsCapRetConfig.Load(model).Chat);
        Assert.Null(ChatAdapterConfig.Load(Path.Combine(model, "chat")).MismatchWith(RsCapRetModel.HeadsSha256(model)));   // retraining the heads needs a new adapter

        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        Assert.Equal("24", encoder.ChatAdapterVersion);
        Assert.Null(ChatSession.NoteFor(encoder));
        var searched = new List<float[]>();
        var session = new ChatSession(encoder, (v, k, ct) => { searched.Add(v); return Task.FromResult<IReadOnlyList<TileHit>>([]); })
        { Calibration = RelevanceCalibration.LoadOrExplain(model).Calibration };
        // Greedy decoding of fixed weights: UCM val 989.jpg is a golf course (never trained on).
        Assert.Contains("golf course", session.AddImage(RasterImage.ReadRgb(UcmImage(989))));
        var yesNo = await session.AskAsync("is there a river?");
        Assert.Equal("no", yesNo.Text);
        Assert.NotNull(yesNo.Grounding);                                       // the verdict from the shared space
        var described = await session.AskAsync("what is in this image?");
        Assert.False(described.Retrieved);
        Assert.Contains("golf course", described.Text);
        // A request after that exchange asks for what it names, not for more like the image (candidates before v24).
        var request = await session.AskAsync("show me storage tanks");
        Assert.True(request.Retrieved, $"answer: {request.Text}");
        Assert.Equal(ChatFormat.RetrievalAnswer, request.Text);
        Assert.Single(searched);
        var query = encoder.EmbedText("storage tanks");
        var cosine = searched[0].Zip(query, (a, b) => a * b).Sum() / Math.Sqrt(searched[0].Sum(a => a * a) * query.Sum(b => b * b));
        Assert.True(cosine > 0.8f, $"its [RET] is near the search's own vector of the words: cosine {cosine:F3}");
    }

    [Fact]
    public async Task ARetInTheAnswerRetrievesTilesThatJoinTheConversationAsImages()
    {
        // The shipped model answers "show me a farm" with [RET] (deterministic: greedy decoding of fixed weights).
        var model = Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        var store = new CatalogStore(db.DataSource);
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        await new SceneIngestor(store, encoder).IngestAsync(TestScenes.Cut(Path.Combine(_dir.FullName, "chat-ret.tif"), 672, 0));
        var modelId = await store.RegisterModelAsync(encoder.Identity);
        var files = new RegisteredSceneFiles();
        var read = new List<long>();
        var session = new ChatSession(encoder, (v, k, ct) => store.SearchAsync(v, k, new SearchFilter(ModelId: modelId), ct), k: 3)
        {
            TileImage = async (hit, ct) =>
            {
                read.Add(hit.TileId);
                return await TileLocalizer.ReadImageAsync(store, files, hit.TileId, encoder.InputSize, ct);
            },
            Calibration = RelevanceCalibration.LoadOrExplain(model).Calibration,
        };
        var reply = await session.AskAsync("show me a farm");
        Assert.True(reply.Retrieved, $"answer: {reply.Text}");
        Assert.DoesNotContain("[RET]", reply.Text);
        var tiles = Assert.IsType<RankedHits>(reply.Tiles);
        Assert.Equal(3, tiles.Hits.Count);
        Assert.All(tiles.Relevance, r => Assert.NotNull(r));            // the search's calibrated relevance
        Assert.Equal(tiles.Hits.Select(h => h.TileId), read);              // every retrieved tile read, in rank order
        Assert.Equal(3, reply.ImagesAdded);
        Assert.Equal(2 + 3, session.Turns);                                // the question, the answer, three images
        // The retrieved images are in the prompt: a follow-up is answered over them.
        var next = await session.AskAsync("describe the second one");
        Assert.True(next.Text.Length > 0 || next.Retrieved);
        Assert.Equal(2 + 3 + 2 + next.ImagesAdded, session.Turns);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}

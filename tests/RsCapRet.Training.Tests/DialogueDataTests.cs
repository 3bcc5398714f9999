using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Training.Datasets;

namespace RsCapRet.Training.Tests;

/// <summary>
/// The chat format and the dialogues generated from captioned images (issue 34): every dialogue fits the model, ends
/// with a trained answer of its intent's shape, never uses a held-out phrasing in training, and answers yes/no and
/// "which one" from the images' classes and captions.
/// </summary>
public sealed class DialogueDataTests
{
    private static readonly LlamaTextTokenizer Tokenizer =
        LlamaTextTokenizer.Load(Path.Combine(RepositoryPaths.FindRoot(), "models", "tokenizer", "rs-bpe-2000.model"), 2000);

    private static IReadOnlyList<CaptionedImage> Train(string dataset) =>
        KarpathyDataset.Load(Path.Combine(RepositoryPaths.SharedDirectory(), "data", dataset), dataset, new HashSet<string> { "train" });

    /// <summary>A pool like a training batch: 64 images of both datasets.</summary>
    private static (List<DialogueImage> Pool, List<CaptionedImage> Images) Pool(int seed)
    {
        var rng = new Random(seed);
        var images = Train("ucm-captions").Concat(Train("rsicd")).OrderBy(_ => rng.Next()).Take(64).ToList();
        return (images.Select((im, i) => new DialogueImage(SceneClassNames.ClassOf(im.Dataset, im.ImagePath), im.Captions, i)).ToList(), images);
    }

    [Fact]
    public void TurnsAreInTheChatFormat()
    {
        var user = ChatFormat.UserTurn(Tokenizer, "  Show me  STORAGE tanks ");
        Assert.Equal(Tokenizer.BosId, user[0]);
        Assert.Equal(Tokenizer.EosId, user[^1]);
        Assert.Equal("q: show me storage tanks", Tokenizer.Decode(user));
        Assert.DoesNotContain(Tokenizer.RetId, ChatFormat.UserTurn(Tokenizer, "find [RET] please"));   // typed [RET] is text
        var answer = ChatFormat.Answer(Tokenizer, ChatFormat.RetrievalAnswer, retrieves: true);
        Assert.Equal([Tokenizer.RetId, Tokenizer.EosId], answer[^2..]);
        Assert.Equal(Tokenizer.EncodeCaptionForTraining("a river ."), ChatFormat.Description(Tokenizer, "a river ."));
        Assert.Equal("the second one", ChatFormat.WhichAnswer(2));
        Assert.Throws<ArgumentException>(() => ChatFormat.UserTurn(Tokenizer, "   "));
        // A turn without its words is the same turn's marker: BOS, the pieces of "q:", EOS.
        var bare = ChatFormat.UserTurnWithoutWords(Tokenizer);
        Assert.Equal(bare[..^1], user[..(bare.Length - 1)]);
        Assert.Equal(Tokenizer.EosId, bare[^1]);
        Assert.Equal(ChatFormat.UserMarker, Tokenizer.Decode(bare));
    }

    [Fact]
    public void UserTurnsCarryTheirWordsAndAModelThatReadsThemCountsOnePositionMoreForEach()
    {
        var (pool, _) = Pool(4);
        // A context that tight makes dialogues drop their optional turns: one that reads turns must drop more.
        var plain = new DialogueGenerator(Tokenizer, pool, maxTokens: 48, prefixTokens: 1);
        var reading = new DialogueGenerator(Tokenizer, pool, maxTokens: 48, prefixTokens: 1, readsTurns: true);
        for (var i = 0; i < 200; i++)
        {
            var sample = reading.WithFollowUps(reading.Generate(i % pool.Count, new Random(i)), 2, new Random(i + 1));
            var users = sample.Turns.OfType<DialogueTextTurn>().Where(t => !t.Trained && t.UserText is not null).ToList();
            Assert.NotEmpty(users);
            foreach (var user in users)
                Assert.Equal($"{ChatFormat.UserMarker} {user.UserText}", Tokenizer.Decode(user.Ids));
            // Answers carry no user words; every user turn does.
            Assert.All(sample.Turns.OfType<DialogueTextTurn>().Where(t => t.Trained), t => Assert.Null(t.UserText));
            Assert.Equal(sample.TokenCount(1) + users.Count, sample.TokenCount(1, readingTokens: 1));
            Assert.True(sample.TokenCount(1, 1) <= 48, $"{sample.TokenCount(1, 1)} positions");
            Assert.True(plain.WithFollowUps(plain.Generate(i % pool.Count, new Random(i)), 2, new Random(i + 1)).TokenCount(1) <= 48);
        }
    }

    [Fact]
    public void ClassesComeFromFileNamesOnlyWhereTheDatasetNamesThem()
    {
        Assert.Equal("airport", SceneClassNames.ClassOf("rsicd", "/x/airport_12.jpg"));
        Assert.Null(SceneClassNames.ClassOf("rsicd", "/x/00012.jpg"));   // RSICD's numbered files have no class
        Assert.Equal("agricultural", SceneClassNames.ClassOf("ucm-captions", "/x/12.jpg"));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void TrainingDialoguesFitEndWithATrainedAnswerAndNeverUseHeldOutPhrasings(bool extended, bool questions)
    {
        var (pool, _) = Pool(1);
        var generator = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1, extendedPhrasings: extended, questionPhrasings: questions);
        var rng = new Random(2);
        var seen = new HashSet<DialogueIntent>();
        var extendedUsed = new HashSet<DialogueIntent>();
        var questionsUsed = new HashSet<DialogueIntent>();
        for (var n = 0; n < 3000; n++)
        {
            var main = rng.Next(pool.Count);
            var d = generator.Generate(main, rng);
            seen.Add(d.Intent);
            Assert.False(d.Phrasing.HeldOut, d.Phrasing.Template);
            if (d.Phrasing.Extended) extendedUsed.Add(d.Intent);
            if (d.Phrasing.Question) questionsUsed.Add(d.Intent);
            Assert.InRange(d.TokenCount(1), 1, 128);
            var answer = Assert.IsType<DialogueTextTurn>(d.Turns[^1]);
            Assert.True(answer.Trained);
            Assert.Equal(Tokenizer.BosId, answer.Ids[0]);
            Assert.Equal(Tokenizer.EosId, answer.Ids[^1]);
            var retrieves = answer.Ids.Contains(Tokenizer.RetId);
            Assert.Equal(d.Intent is DialogueIntent.Retrieve or DialogueIntent.Similar, retrieves);
            if (retrieves)
            {
                // The [RET] is trained toward images that include the one the dialogue is about.
                Assert.NotNull(d.RetPositives);
                Assert.Contains(d.MainImage, d.RetPositives!);
            }
            // A request for a named thing carries its words, the search query its [RET] is distilled toward.
            Assert.Equal(d.Intent == DialogueIntent.Retrieve ? d.Thing : null, answer.RetQuery);
            if (d.Intent == DialogueIntent.Retrieve) Assert.False(string.IsNullOrWhiteSpace(answer.RetQuery));
            // The user's last turn is right before the answer and is not trained.
            var question = Assert.IsType<DialogueTextTurn>(d.Turns[^2]);
            Assert.False(question.Trained);
            Assert.StartsWith("q: ", Tokenizer.Decode(question.Ids));
            if (d.Intent == DialogueIntent.YesNo) Assert.Contains(d.Answer, new[] { ChatFormat.Yes, ChatFormat.No });
        }
        Assert.Equal(Enum.GetValues<DialogueIntent>().ToHashSet(), seen);
        // The extended phrasings are drawn for every intent when asked for, never otherwise.
        Assert.Equal(extended ? seen : [], extendedUsed);
        // So are the question-form ones, for the intents that have them.
        Assert.Equal(questions ? [DialogueIntent.Retrieve, DialogueIntent.Similar, DialogueIntent.YesNo] : [], questionsUsed.Order().ToArray());
    }

    [Fact]
    public void ARetrievalAnswerCanNameWhatItSearchesForAndStillFitsTheChatsAnswerLength()
    {
        var (pool, _) = Pool(7);
        var naming = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1, retrievalAnswerNamesThing: true);
        var plain = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1);
        var phrasing = DialogueGenerator.PhrasingsOf(DialogueIntent.Retrieve, heldOut: false, ordinal: false)[0];
        int byCaption = 0, byClass = 0;
        for (var n = 0; n < 400; n++)
        {
            var main = n % pool.Count;
            var d = naming.Generate(main, DialogueIntent.Retrieve, phrasing, new Random(n), retrieveByClass: n % 2 == 0);
            var answer = (DialogueTextTurn)d.Turns[^1];
            Assert.Equal([Tokenizer.RetId, Tokenizer.EosId], answer.Ids[^2..]);
            // The answer is "here they are: THING": the thing's words (cut to 32 pieces), then [RET], as the search's query ends.
            var written = Tokenizer.Decode(answer.Ids[1..^2]);
            Assert.StartsWith(ChatFormat.RetrievalAnswer + ":", written);
            var thing = d.Thing!;
            var pieces = Tokenizer.EncodeSentencePiece(thing);
            var named = pieces.Count <= 32 ? thing : Tokenizer.Decode(pieces.Take(32));
            Assert.Equal(Tokenizer.Decode(Tokenizer.EncodeSentencePiece(ChatFormat.RetrievalAnswerNaming(named))), written);
            // What the chat lets the model write after BOS (40 tokens) holds the whole answer and its [RET].
            Assert.InRange(answer.Ids.Length - 2, 1, 40);
            // The [RET] is still distilled toward the search's vector of the whole thing.
            Assert.Equal(thing, answer.RetQuery);
            if (d.AboutCaption) byCaption++; else byClass++;
            // Without the option the same dialogue answers as before.
            var before = plain.Generate(main, DialogueIntent.Retrieve, phrasing, new Random(n), retrieveByClass: n % 2 == 0);
            Assert.Equal(ChatFormat.Answer(Tokenizer, ChatFormat.RetrievalAnswer, true), ((DialogueTextTurn)before.Turns[^1]).Ids);
            Assert.Equal(before.Thing, d.Thing);
        }
        Assert.True(byCaption > 100 && byClass > 50, $"by caption {byCaption}, by class {byClass}");
        // A caption longer than 32 pieces is named cut, and answer and [RET] still fit.
        var longCaption = string.Join(' ', Enumerable.Repeat("qz xv", 30));
        var longPool = new List<DialogueImage> { new(null, [longCaption], 0), new(null, ["a river ."], 1) };
        var cutAnswer = (DialogueTextTurn)new DialogueGenerator(Tokenizer, longPool, 512, 1, retrievalAnswerNamesThing: true)
            .Generate(0, DialogueIntent.Retrieve, phrasing, new Random(1)).Turns[^1];
        Assert.Equal(DialogueGenerator.CaptionText(longCaption), cutAnswer.RetQuery);
        Assert.True(Tokenizer.EncodeSentencePiece(cutAnswer.RetQuery!).Count > 32);
        var cutThing = Tokenizer.Decode(Tokenizer.EncodeSentencePiece(cutAnswer.RetQuery!).Take(32));
        Assert.Equal(Tokenizer.Decode(Tokenizer.EncodeSentencePiece(ChatFormat.RetrievalAnswerNaming(cutThing))), Tokenizer.Decode(cutAnswer.Ids[1..^2]));
        Assert.InRange(cutAnswer.Ids.Length - 1, 1, 40);   // what the model writes after BOS: the answer, [RET], EOS
        // A retrieval in a conversation's context names its thing too, as the model wrote it.
        var contexts = Enumerable.Range(0, 300).Select(n => naming.Generate(n % pool.Count, DialogueIntent.Describe,
                DialogueGenerator.PhrasingsOf(DialogueIntent.Describe, false, ordinal: true)[0], new Random(n)))
            .SelectMany(d => d.Turns.OfType<DialogueTextTurn>().Where(t => !t.Trained && t.UserText is null)).ToList();
        Assert.NotEmpty(contexts);
        Assert.All(contexts, t => Assert.StartsWith(ChatFormat.RetrievalAnswer + ":", Tokenizer.Decode(t.Ids)));
    }

    [Fact]
    public void FollowUpsAskAboutImagesTheConversationShowsAndStillFit()
    {
        var (pool, _) = Pool(5);
        var generator = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1);
        var rng = new Random(6);
        int longer = 0, byPosition = 0, afterRetrieval = 0;
        var followUpIntents = new HashSet<DialogueIntent>();
        for (var n = 0; n < 2000; n++)
        {
            var first = generator.Generate(rng.Next(pool.Count), rng);
            var d = generator.WithFollowUps(first, 3, rng);
            Assert.InRange(d.TokenCount(1), 1, 128);
            Assert.Equal(first.Turns, d.Turns.Take(first.Turns.Count));   // a conversation continues; it never rewrites
            var answers = d.Turns.OfType<DialogueTextTurn>().Where(t => t.Trained).ToList();
            if (answers.Count == 1) continue;
            longer++;
            followUpIntents.Add(d.Intent);
            if (!first.Turns.OfType<DialogueImageTurn>().Any()) afterRetrieval++;
            // Every trained answer is a whole turn; each [RET] answer carries the images its vector is trained toward.
            foreach (var a in answers)
            {
                Assert.Equal(Tokenizer.BosId, a.Ids[0]);
                Assert.Equal(Tokenizer.EosId, a.Ids[^1]);
                Assert.Equal(a.Ids.Contains(Tokenizer.RetId), a.RetPositives is not null);
            }
            var shown = d.Turns.OfType<DialogueImageTurn>().Select(t => t.Image).ToList();
            Assert.Contains(d.MainImage, shown);
            Assert.False(d.Phrasing.HeldOut, d.Phrasing.Template);
            // Several images: the question names a position (or asks which one); one image: it does not.
            if (shown.Count > 1 && d.Intent != DialogueIntent.Which) { Assert.True(d.Phrasing.Ordinal, d.Phrasing.Template); byPosition++; }
            if (shown.Count == 1) Assert.False(d.Phrasing.Ordinal, d.Phrasing.Template);
            if (d.Intent == DialogueIntent.Similar) Assert.Contains(d.MainImage, d.RetPositives!);
            if (d.Intent == DialogueIntent.YesNo) Assert.Contains(d.Answer, new[] { ChatFormat.Yes, ChatFormat.No });
        }
        Assert.True(longer > 1000 && byPosition > 100 && afterRetrieval > 50, $"longer {longer}, by position {byPosition}, after a retrieval {afterRetrieval}");
        Assert.Equal(new[] { DialogueIntent.Describe, DialogueIntent.Similar, DialogueIntent.YesNo, DialogueIntent.Which }.ToHashSet(), followUpIntents);
        var alone = generator.Generate(0, new Random(1));
        Assert.Same(alone, generator.WithFollowUps(alone, 0, new Random(1)));
    }

    [Fact]
    public void FollowUpRequestsRetrieveSomethingNewAfterAnExchangeAndLaterQuestionsCountTheNewImages()
    {
        var (pool, _) = Pool(5);
        var generator = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1, followUpRequests: true);
        var rng = new Random(8);
        int requests = 0, afterRequest = 0;
        for (var n = 0; n < 2000; n++)
        {
            var first = generator.Generate(rng.Next(pool.Count), rng);
            var d = generator.WithFollowUps(first, 2, rng);
            Assert.InRange(d.TokenCount(1), 1, 128);
            Assert.Equal(first.Turns, d.Turns.Take(first.Turns.Count));
            var turns = d.Turns.ToList();
            for (var t = first.Turns.Count; t < turns.Count; t++)
            {
                if (turns[t] is not DialogueTextTurn { Trained: true } answer || !answer.Ids.Contains(Tokenizer.RetId)) continue;
                var question = Assert.IsType<DialogueTextTurn>(turns[t - 1]);
                if (answer.RetQuery is null) continue;   // "more like this" follow-ups carry no query
                requests++;
                // A request after an exchange: an earlier answer was trained; the [RET] is pulled toward the words asked for.
                Assert.Contains(turns.Take(t - 1), x => x is DialogueTextTurn { Trained: true });
                Assert.Contains(answer.RetQuery[..Math.Min(20, answer.RetQuery.Length)], question.UserText!, StringComparison.Ordinal);
                Assert.NotNull(answer.RetPositives);
                // Images that join after it are images of what it asked for; a later question's positions count them.
                var joined = turns.Skip(t + 1).TakeWhile(x => x is DialogueImageTurn).Cast<DialogueImageTurn>().Select(i => i.Image).ToList();
                Assert.All(joined, i => Assert.Contains(i, answer.RetPositives!));
                if (joined.Count > 0 && t + 1 + joined.Count < turns.Count)
                {
                    afterRequest++;
                    if (d.Intent is not DialogueIntent.Retrieve and not DialogueIntent.Which && d.Phrasing.Ordinal)
                        Assert.Contains(d.MainImage, joined);
                }
            }
        }
        Assert.True(requests > 100 && afterRequest > 30, $"requests {requests}, questions after one {afterRequest}");
        // Off (every earlier config), a follow-up never asks to retrieve something new.
        var plain = new DialogueGenerator(Tokenizer, pool, maxTokens: 128, prefixTokens: 1);
        var rng2 = new Random(8);
        for (var n = 0; n < 500; n++)
        {
            var first = plain.Generate(rng2.Next(pool.Count), rng2);
            var d = plain.WithFollowUps(first, 2, rng2);
            Assert.DoesNotContain(d.Turns.Skip(first.Turns.Count), x => x is DialogueTextTurn { RetQuery: not null });
        }
    }

    [Fact]
    public void YesNoAndWhichAnswersFollowTheImagesCaptionsAndClasses()
    {
        var (pool, images) = Pool(3);
        var generator = new DialogueGenerator(Tokenizer, pool, 128, 1);
        var rng = new Random(4);
        int yes = 0, no = 0, which = 0;
        for (var n = 0; n < 1500; n++)
        {
            var main = rng.Next(pool.Count);
            var words = string.Join(' ', images[main].Captions).ToLowerInvariant().Split([' ', '.', ','], StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            var yn = generator.Generate(main, DialogueIntent.YesNo, DialogueGenerator.PhrasingsOf(DialogueIntent.YesNo, false, false)[0], rng);
            var thing = yn.Thing!;
            var classLabel = pool[main].ClassName is { } c ? SceneClassNames.LabelOf(c) : null;
            // Yes: the image's class, or an object its captions name; no: neither.
            var named = DialogueGenerator.ObjectWords(thing).Any(words.Contains);
            if (yn.Answer == ChatFormat.Yes) { yes++; Assert.True(thing == classLabel || named, $"yes to '{thing}' for: {string.Join(' ', words)}"); }
            else { no++; Assert.NotEqual(classLabel, thing); Assert.False(named, $"no to '{thing}' for: {string.Join(' ', words)}"); }

            if (pool[main].ClassName is null) continue;
            var w = generator.Generate(main, DialogueIntent.Which, DialogueGenerator.PhrasingsOf(DialogueIntent.Which, false)[0], rng);
            if (w.Intent != DialogueIntent.Which) continue;
            which++;
            var shown = w.Turns.OfType<DialogueImageTurn>().Select(t => t.Image).ToList();
            Assert.Equal(2, shown.Count);
            Assert.Equal(ChatFormat.WhichAnswer(shown.IndexOf(main) + 1), w.Answer);
            Assert.NotEqual(pool[shown[0]].ClassName, pool[shown[1]].ClassName);
        }
        Assert.True(yes > 300 && no > 300 && which > 300, $"yes {yes}, no {no}, which {which}");
    }

    [Fact]
    public void EveryIntentHasSeenAndHeldOutPhrasings()
    {
        foreach (var intent in Enum.GetValues<DialogueIntent>())
        {
            Assert.NotEmpty(DialogueGenerator.PhrasingsOf(intent, heldOut: false, ordinal: false));
            Assert.NotEmpty(DialogueGenerator.PhrasingsOf(intent, heldOut: true, ordinal: false));
        }
        // No held-out phrasing is also a seen one.
        var seen = DialogueGenerator.Phrasings.Where(p => !p.HeldOut).Select(p => p.Template).ToHashSet();
        Assert.DoesNotContain(DialogueGenerator.Phrasings.Where(p => p.HeldOut), p => seen.Contains(p.Template));
        // Extended phrasings are seen ones, and only listed when asked for: evaluations ask the same questions as before.
        Assert.All(DialogueGenerator.Phrasings.Where(p => p.Extended), p => Assert.False(p.HeldOut));
        foreach (var intent in Enum.GetValues<DialogueIntent>())
        {
            Assert.DoesNotContain(DialogueGenerator.PhrasingsOf(intent, heldOut: false), p => p.Extended || p.Question);
            Assert.Contains(DialogueGenerator.PhrasingsOf(intent, heldOut: false, extended: true), p => p.Extended);
            // The later held-out set is a row of its own for every intent; the first held-out row asks what it always asked.
            Assert.NotEmpty(DialogueGenerator.PhrasingsOf(intent, heldOut: true, ordinal: false, later: true));
            Assert.All(DialogueGenerator.PhrasingsOf(intent, heldOut: true, later: true), p => Assert.True(p.LaterHeldOut));
            Assert.DoesNotContain(DialogueGenerator.PhrasingsOf(intent, heldOut: true), p => p.LaterHeldOut);
        }
        // The question-form set was written after "can you find {thing}?" failed: it keeps clear of that phrasing's
        // words, as of the later held-out set's distinctive ones, so both rows still measure phrasings never trained.
        var questions = DialogueGenerator.Phrasings.Where(p => p.Question).ToList();
        Assert.All(questions, p => Assert.False(p.HeldOut || p.Extended));
        foreach (var words in new[] { "can you", "find", "do you have", "pull up", "is it possible", "resemble", "shown", "this kind", "which", "contain" })
            Assert.DoesNotContain(questions, p => p.Template.Contains(words, StringComparison.Ordinal));
    }
}

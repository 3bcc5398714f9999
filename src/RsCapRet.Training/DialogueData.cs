using System.Text.RegularExpressions;
using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;

namespace RsCapRet.Training;

/// <summary>What a user turn asks for (issue 34).</summary>
public enum DialogueIntent { Describe, Retrieve, Similar, YesNo, Which }

/// <summary>
/// One phrasing of an intent; held-out phrasings never appear in training and measure generalisation. Extended and
/// question-form ones are trained only when the config asks for them (<see cref="TrainConfig.DialogueExtendedPhrasings"/>,
/// <see cref="TrainConfig.DialogueQuestionPhrasings"/>) and are not evaluated, so every run's "seen" and "held out" rows
/// ask the same questions. <see cref="LaterHeldOut"/> ones (held out, written with dialogue-v22 beside the question-form
/// set) are a second probe, evaluated in a row of their own.
/// </summary>
public sealed record DialoguePhrasing(DialogueIntent Intent, string Template, bool HeldOut, bool Ordinal = false, bool Extended = false,
    bool Question = false, bool LaterHeldOut = false);

/// <summary>An image the generator may use: its scene class (when the file name gives one), captions and caption group.</summary>
public sealed record DialogueImage(string? ClassName, IReadOnlyList<string> Captions, int Group);

/// <summary>A turn of a generated dialogue: an image of the pool (with its description when given), or tokens.</summary>
public abstract record DialogueTurn;

/// <summary>An image (index into the pool) and, when the dialogue shows it, the model's description (caption format, trained).</summary>
public sealed record DialogueImageTurn(int Image, int[]? Description) : DialogueTurn;

/// <summary>
/// Tokens; <see cref="Trained"/> marks the model's own turns (the loss covers them); a trained answer ending in [RET]
/// has the pool images its vector is trained toward in <see cref="RetPositives"/>, and when it answers a request for a
/// named thing, that thing's words in <see cref="RetQuery"/> (the search's vector of them is what the [RET] should say).
/// A user turn carries its words in <see cref="UserText"/> (what a model that reads turns reads).
/// </summary>
public sealed record DialogueTextTurn(int[] Ids, bool Trained, IReadOnlySet<int>? RetPositives = null, string? RetQuery = null, string? UserText = null)
    : DialogueTurn;

/// <summary>
/// A generated dialogue: its turns (the last is the answer), the intent and phrasing of the last user turn, the
/// expected answer text, and the thing asked about (a class label, an object, or for <see cref="AboutCaption"/>
/// requests a caption's text).
/// </summary>
public sealed record DialogueSample(DialogueIntent Intent, DialoguePhrasing Phrasing, IReadOnlyList<DialogueTurn> Turns, string Answer,
    int MainImage, bool AboutCaption, string? Thing = null)
{
    /// <summary>For a [RET] answer, the pool images its vector is trained toward (the answer turn's).</summary>
    public IReadOnlySet<int>? RetPositives => (Turns[^1] as DialogueTextTurn)?.RetPositives;

    /// <summary>Positions the dialogue takes; <paramref name="readingTokens"/> (0 or 1) more before each user turn for a model that reads turns.</summary>
    public int TokenCount(int prefixTokens, int readingTokens = 0) => Turns.Sum(t => t switch
    {
        DialogueImageTurn i => prefixTokens + (i.Description?.Length ?? 0),
        DialogueTextTurn x => x.Ids.Length + (x.UserText is null ? 0 : readingTokens),
        _ => 0,
    });
}

/// <summary>
/// Dialogues generated from captioned images (issue 34): an image then "describe it" → a reference caption; "show me
/// / find / where are THING" → "here they are [RET]" (or "here they are: THING [RET]") with the [RET] trained toward
/// the images of THING (its class, or the image whose caption THING is); "more like this" → [RET] toward that image;
/// "can you see THING?" → yes/no from the image's class and captions; two images → "which one shows THING?" → "the
/// first one" / "the second one"; follow-ups over several images ("describe the second one"), as after a retrieval.
/// Every turn is in <see cref="ChatFormat"/>. Pure function of (pool, rng): training draws from the batch, evaluation from a val split.
/// </summary>
public sealed partial class DialogueGenerator
{
    /// <summary>Every phrasing; <see cref="DialoguePhrasing.HeldOut"/> ones are used only by the evaluation.</summary>
    public static readonly IReadOnlyList<DialoguePhrasing> Phrasings =
    [
        new(DialogueIntent.Describe, "what is in this image?", false), new(DialogueIntent.Describe, "describe it", false),
        new(DialogueIntent.Describe, "what is this place?", false), new(DialogueIntent.Describe, "describe this image", false),
        new(DialogueIntent.Describe, "what do you see?", false), new(DialogueIntent.Describe, "tell me about this image", false),
        new(DialogueIntent.Describe, "what does this image show?", false),
        new(DialogueIntent.Describe, "can you describe this picture?", true), new(DialogueIntent.Describe, "what can you see here?", true),
        new(DialogueIntent.Describe, "describe the {ord} one", false, true), new(DialogueIntent.Describe, "what is in the {ord} image?", false, true),
        new(DialogueIntent.Describe, "tell me about the {ord} one", false, true), new(DialogueIntent.Describe, "what does the {ord} one show?", true, true),

        new(DialogueIntent.Retrieve, "show me {thing}", false), new(DialogueIntent.Retrieve, "find {thing}", false),
        new(DialogueIntent.Retrieve, "where are {thing}?", false), new(DialogueIntent.Retrieve, "search for {thing}", false),
        new(DialogueIntent.Retrieve, "i am looking for {thing}", false), new(DialogueIntent.Retrieve, "show me images of {thing}", false),
        new(DialogueIntent.Retrieve, "can you find {thing}?", true), new(DialogueIntent.Retrieve, "give me pictures of {thing}", true),

        new(DialogueIntent.Similar, "more like this", false), new(DialogueIntent.Similar, "show me similar places", false),
        new(DialogueIntent.Similar, "find similar images", false), new(DialogueIntent.Similar, "similar places please", false),
        new(DialogueIntent.Similar, "anything else like this?", true), new(DialogueIntent.Similar, "find places that look like this", true),
        new(DialogueIntent.Similar, "more like the {ord} one", false, true), new(DialogueIntent.Similar, "show me places like the {ord} one", false, true),
        new(DialogueIntent.Similar, "find images similar to the {ord} one", true, true),

        new(DialogueIntent.YesNo, "can you see {thing}?", false), new(DialogueIntent.YesNo, "does it show {thing}?", false),
        new(DialogueIntent.YesNo, "is there {thing} in it?", false), new(DialogueIntent.YesNo, "any {thing} here?", false),
        new(DialogueIntent.YesNo, "do you see {thing}?", true), new(DialogueIntent.YesNo, "does this image contain {thing}?", true),
        new(DialogueIntent.YesNo, "can you see {thing} in the {ord} one?", false, true), new(DialogueIntent.YesNo, "does the {ord} one show {thing}?", true, true),

        new(DialogueIntent.Which, "which one shows {thing}?", false), new(DialogueIntent.Which, "which image has {thing}?", false),
        new(DialogueIntent.Which, "in which one can you see {thing}?", false), new(DialogueIntent.Which, "which of them shows {thing}?", true),

        // Extended (dialogue-v13): more ways to ask, none sharing a held-out phrasing's distinctive words
        // ("picture", "can you find", "give me", "anything else", "look like", "do you see", "contain", "which of them").
        X(DialogueIntent.Describe, "what is shown here?"), X(DialogueIntent.Describe, "give a description of this image"),
        X(DialogueIntent.Describe, "what kind of place is this?"), X(DialogueIntent.Describe, "explain what this image shows"),
        X(DialogueIntent.Describe, "caption this image"), X(DialogueIntent.Describe, "what am i looking at?"),
        X(DialogueIntent.Describe, "tell me what is in this image"), X(DialogueIntent.Describe, "what is this?"),
        X(DialogueIntent.Describe, "summarize this scene"), X(DialogueIntent.Describe, "please describe this"),
        X(DialogueIntent.Describe, "give a description of the {ord} image", true), X(DialogueIntent.Describe, "explain the {ord} one", true),
        X(DialogueIntent.Describe, "what kind of place is the {ord} one?", true),

        X(DialogueIntent.Retrieve, "i want to see {thing}"), X(DialogueIntent.Retrieve, "look for {thing}"),
        X(DialogueIntent.Retrieve, "are there any images of {thing}?"), X(DialogueIntent.Retrieve, "display {thing}"),
        X(DialogueIntent.Retrieve, "locate {thing}"), X(DialogueIntent.Retrieve, "please show {thing}"),
        X(DialogueIntent.Retrieve, "get me {thing}"), X(DialogueIntent.Retrieve, "show {thing}"),
        X(DialogueIntent.Retrieve, "retrieve {thing}"), X(DialogueIntent.Retrieve, "let me see {thing}"),
        X(DialogueIntent.Retrieve, "{thing}"), X(DialogueIntent.Retrieve, "search the archive for {thing}"),

        X(DialogueIntent.Similar, "show me more like this"), X(DialogueIntent.Similar, "more of these"),
        X(DialogueIntent.Similar, "similar ones please"), X(DialogueIntent.Similar, "images like this"),
        X(DialogueIntent.Similar, "what else is like this?"), X(DialogueIntent.Similar, "search for similar scenes"),
        X(DialogueIntent.Similar, "other places like this"), X(DialogueIntent.Similar, "something similar"),
        X(DialogueIntent.Similar, "places like the {ord} image", true), X(DialogueIntent.Similar, "search for ones like the {ord} one", true),

        X(DialogueIntent.YesNo, "is there {thing}?"), X(DialogueIntent.YesNo, "is {thing} visible?"),
        X(DialogueIntent.YesNo, "can {thing} be seen here?"), X(DialogueIntent.YesNo, "is {thing} present?"),
        X(DialogueIntent.YesNo, "any sign of {thing}?"), X(DialogueIntent.YesNo, "is {thing} in this image?"),
        X(DialogueIntent.YesNo, "has it got {thing}?"), X(DialogueIntent.YesNo, "{thing}, yes or no?"),
        X(DialogueIntent.YesNo, "is there {thing} in the {ord} one?", true), X(DialogueIntent.YesNo, "is {thing} visible in the {ord} image?", true),

        X(DialogueIntent.Which, "which image shows {thing}?"), X(DialogueIntent.Which, "which one has {thing}?"),
        X(DialogueIntent.Which, "in which image is {thing}?"), X(DialogueIntent.Which, "which one is {thing}?"),
        X(DialogueIntent.Which, "where is {thing}, first or second?"),

        // Question-form (dialogue-v22): requests asked as questions, after held-out "can you find {thing}?" was answered
        // yes/no in a quarter of the dialogues; none uses "can you", "find" or a later held-out phrasing's words.
        Q(DialogueIntent.Retrieve, "could you show me {thing}?"), Q(DialogueIntent.Retrieve, "would you search for {thing}?"),
        Q(DialogueIntent.Retrieve, "could you look for {thing}?"), Q(DialogueIntent.Retrieve, "are you able to locate {thing}?"),
        Q(DialogueIntent.Retrieve, "could you display {thing}?"), Q(DialogueIntent.Retrieve, "would you show me images of {thing}?"),
        Q(DialogueIntent.Retrieve, "may i see {thing}?"), Q(DialogueIntent.Retrieve, "will you search the archive for {thing}?"),
        Q(DialogueIntent.Similar, "could you show me similar places?"), Q(DialogueIntent.Similar, "are there more places like this?"),
        Q(DialogueIntent.Similar, "would you search for places like this?"),
        Q(DialogueIntent.YesNo, "are there {thing} in it?"), Q(DialogueIntent.YesNo, "would you say it has {thing}?"),
        Q(DialogueIntent.YesNo, "does it have {thing}?"), Q(DialogueIntent.YesNo, "is this image showing {thing}?"),
        Q(DialogueIntent.YesNo, "could there be {thing} here?"), Q(DialogueIntent.YesNo, "are you able to spot {thing} here?"),
        Q(DialogueIntent.YesNo, "does the {ord} one have {thing}?", true), Q(DialogueIntent.YesNo, "could there be {thing} in the {ord} image?", true),

        // Held out, written with dialogue-v22 beside the question-form set: a probe none of that set was written against.
        L(DialogueIntent.Describe, "how would you describe this scene?"), L(DialogueIntent.Describe, "what is here?"),
        L(DialogueIntent.Describe, "what is shown in the {ord} image?", true),
        L(DialogueIntent.Retrieve, "do you have images of {thing}?"), L(DialogueIntent.Retrieve, "pull up {thing}"),
        L(DialogueIntent.Retrieve, "is it possible to find {thing}?"),
        L(DialogueIntent.Similar, "what other places resemble this?"), L(DialogueIntent.Similar, "more of this kind"),
        L(DialogueIntent.YesNo, "is {thing} shown here?"), L(DialogueIntent.YesNo, "would i find {thing} here?"),
        L(DialogueIntent.YesNo, "is {thing} shown in the {ord} one?", true),
        L(DialogueIntent.Which, "which one contains {thing}?"), L(DialogueIntent.Which, "which of the two has {thing}?"),
    ];

    private static DialoguePhrasing X(DialogueIntent intent, string template, bool ordinal = false) => new(intent, template, false, ordinal, Extended: true);
    private static DialoguePhrasing Q(DialogueIntent intent, string template, bool ordinal = false) => new(intent, template, false, ordinal, Question: true);
    private static DialoguePhrasing L(DialogueIntent intent, string template, bool ordinal = false) => new(intent, template, true, ordinal, LaterHeldOut: true);

    /// <summary>Things a yes/no question can ask about: the words a user types, and caption words that mean "present".</summary>
    private static readonly (string Label, string[] Words)[] Objects =
    [
        ("trees", ["tree", "trees"]), ("a river", ["river", "rivers"]), ("buildings", ["building", "buildings"]), ("cars", ["car", "cars"]),
        ("roads", ["road", "roads", "street", "streets"]), ("a bridge", ["bridge", "bridges"]), ("a pond", ["pond", "ponds"]),
        ("storage tanks", ["tank", "tanks"]), ("airplanes", ["plane", "planes", "airplane", "airplanes", "aircraft"]),
        ("boats", ["boat", "boats", "ship", "ships"]), ("a baseball field", ["baseball"]), ("tennis courts", ["tennis"]),
        ("a swimming pool", ["pool", "pools"]), ("a parking lot", ["parking"]), ("a beach", ["beach", "beaches"]),
        ("the sea", ["sea", "ocean"]), ("a runway", ["runway", "runways"]), ("farmland", ["farmland", "farmlands", "agricultural", "cropland"]),
        ("a forest", ["forest", "forests"]), ("grass", ["meadow", "meadows", "lawn", "lawns", "grass"]), ("a desert", ["desert"]),
        ("mountains", ["mountain", "mountains"]), ("a church", ["church"]), ("a stadium", ["stadium"]),
        ("a playground", ["playground", "playgrounds"]), ("a railway", ["railway", "railways", "train", "trains"]),
        ("houses", ["house", "houses", "home", "homes"]), ("a lake", ["lake", "lakes"]), ("a golf course", ["golf"]),
        ("a freeway", ["freeway", "freeways", "highway"]), ("a viaduct", ["viaduct", "viaducts", "overpass"]),
    ];

    private readonly LlamaTextTokenizer _tokenizer;
    private readonly IReadOnlyList<DialogueImage> _pool;
    private readonly HashSet<string>[] _words;
    private readonly string[] _classes;
    private readonly int _maxTokens, _prefixTokens, _readingTokens;
    private readonly bool _extended, _questions, _namesThing, _followUpRequests;

    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="pool">The images dialogues may show.</param>
    /// <param name="maxTokens">The LLM's positions: a dialogue that would not fit drops its optional turns.</param>
    /// <param name="prefixTokens">Visual prefix tokens per image.</param>
    /// <param name="extendedPhrasings">Whether training also draws the extended phrasings.</param>
    /// <param name="readsTurns">Whether the model reads each user turn as one more position (it counts against <paramref name="maxTokens"/>).</param>
    /// <param name="retrievalAnswerNamesThing">Whether a retrieval answer names what it searches for (<see cref="ChatFormat.RetrievalAnswerNaming"/>).</param>
    /// <param name="questionPhrasings">Whether training also draws the question-form phrasings.</param>
    /// <param name="followUpRequests">Whether a follow-up may also ask to retrieve something new (<see cref="WithFollowUps"/>).</param>
    public DialogueGenerator(LlamaTextTokenizer tokenizer, IReadOnlyList<DialogueImage> pool, int maxTokens, int prefixTokens, bool extendedPhrasings = false,
        bool readsTurns = false, bool retrievalAnswerNamesThing = false, bool questionPhrasings = false, bool followUpRequests = false)
    {
        if (pool.Count < 2) throw new ArgumentException("dialogues need a pool of at least two images", nameof(pool));
        _tokenizer = tokenizer;
        _pool = pool;
        _maxTokens = maxTokens;
        _prefixTokens = prefixTokens;
        _readingTokens = readsTurns ? 1 : 0;
        _extended = extendedPhrasings;
        _questions = questionPhrasings;
        _namesThing = retrievalAnswerNamesThing;
        _followUpRequests = followUpRequests;
        _words = pool.Select(p => p.Captions.SelectMany(c => Word().Matches(c.ToLowerInvariant()).Select(m => m.Value)).ToHashSet()).ToArray();
        _classes = pool.Select(p => p.ClassName).OfType<string>().Distinct().Order(StringComparer.Ordinal).ToArray();
    }

    [GeneratedRegex("[a-z]+")]
    private static partial Regex Word();

    /// <summary>
    /// The phrasings of an intent, seen in training or held out; <paramref name="extended"/> and <paramref name="questions"/>
    /// add those sets to the seen; <paramref name="later"/> picks the held-out phrasings written with dialogue-v22 instead of the first.
    /// </summary>
    public static IReadOnlyList<DialoguePhrasing> PhrasingsOf(DialogueIntent intent, bool heldOut, bool? ordinal = null, bool extended = false,
        bool questions = false, bool later = false) =>
        Phrasings.Where(p => p.Intent == intent && p.HeldOut == heldOut && (ordinal is null || p.Ordinal == ordinal)
            && (heldOut ? p.LaterHeldOut == later : (extended || !p.Extended) && (questions || !p.Question))).ToList();

    /// <summary>The phrasings training draws from.</summary>
    private IReadOnlyList<DialoguePhrasing> Trained(DialogueIntent intent, bool? ordinal = null) =>
        PhrasingsOf(intent, heldOut: false, ordinal, _extended, _questions);

    /// <summary>A dialogue about pool image <paramref name="main"/> with a random intent and a seen phrasing (training).</summary>
    public DialogueSample Generate(int main, Random rng)
    {
        var roll = rng.Next(10);
        var intent = roll switch { < 2 => DialogueIntent.Describe, < 4 => DialogueIntent.Retrieve, < 5 => DialogueIntent.Similar, < 8 => DialogueIntent.YesNo, _ => DialogueIntent.Which };
        // Ordinal follow-ups (over several images, as after a retrieval) for a third of the intents that have them.
        var ordinal = intent is DialogueIntent.Describe or DialogueIntent.Similar or DialogueIntent.YesNo && rng.Next(3) == 0;
        return Generate(main, intent, Pick(Trained(intent, ordinal), rng), rng);
    }

    /// <summary>
    /// A dialogue about pool image <paramref name="main"/> whose last user turn uses <paramref name="phrasing"/>;
    /// <paramref name="retrieveByClass"/> fixes what a retrieval asks for (the image's class, or one of its captions).
    /// </summary>
    public DialogueSample Generate(int main, DialogueIntent intent, DialoguePhrasing phrasing, Random rng, bool? retrieveByClass = null)
    {
        if (phrasing.Intent != intent) throw new ArgumentException($"phrasing '{phrasing.Template}' is not for {intent}", nameof(phrasing));
        if (intent == DialogueIntent.Which && _pool[main].ClassName is null)
        {
            // "Which one shows X" needs the image's class: an image without one is described instead.
            intent = DialogueIntent.Describe;
            phrasing = Pick(PhrasingsOf(DialogueIntent.Describe, phrasing.HeldOut, false, later: phrasing.LaterHeldOut), rng);
        }
        var sample = intent switch
        {
            DialogueIntent.Which => Which(main, phrasing, rng),
            _ when phrasing.Ordinal => Ordinal(main, phrasing, rng),
            DialogueIntent.Describe => Single(main, phrasing, null, Describe(main, rng), null, rng),
            DialogueIntent.Retrieve => Retrieve(main, phrasing, rng, retrieveByClass),
            DialogueIntent.Similar => Single(main, phrasing, null, Answer(ChatFormat.SimilarAnswer, true), SameGroup(main), rng),
            DialogueIntent.YesNo => YesNo(main, phrasing, rng),
            _ => throw new ArgumentOutOfRangeException(nameof(intent), intent, null),
        };
        return sample;
    }

    private DialogueSample Single(int main, DialoguePhrasing phrasing, string? thing, (int[] Ids, string Text) answer, IReadOnlySet<int>? positives,
        Random rng, bool withImage = true, bool aboutCaption = false)
    {
        var question = User(Fill(phrasing.Template, thing, null));
        var turns = new List<DialogueTurn>();
        if (withImage)
        {
            // Half the dialogues show the model's description first, as the chat does after an image.
            var description = rng.Next(2) == 0 ? DescriptionOf(main, rng) : null;
            turns.Add(new DialogueImageTurn(main, description));
        }
        turns.Add(question);
        turns.Add(new DialogueTextTurn(answer.Ids, true, positives, phrasing.Intent == DialogueIntent.Retrieve ? thing : null));
        var sample = new DialogueSample(phrasing.Intent, phrasing, turns, answer.Text, main, aboutCaption, thing);
        return Fit(sample);
    }

    private DialogueSample Retrieve(int main, DialoguePhrasing phrasing, Random rng, bool? retrieveByClass)
    {
        // THING is the image's class (positives: the pool's images of it) or one of its captions (positives: its group).
        var byClass = _pool[main].ClassName is not null && (retrieveByClass ?? rng.Next(2) == 0);
        var thing = byClass ? SceneClassNames.LabelOf(_pool[main].ClassName!) : CaptionText(_pool[main].Captions[rng.Next(_pool[main].Captions.Count)]);
        var positives = byClass ? SameClass(main) : SameGroup(main);
        // A retrieval request often comes first in a conversation; sometimes after an unrelated image.
        var afterImage = rng.Next(3) == 0;
        var other = afterImage ? OtherImage(main, rng) : main;
        var sample = Single(other, phrasing, thing, RetrievalAnswer(thing), positives, rng, withImage: afterImage, aboutCaption: !byClass);
        return sample with { MainImage = main };
    }

    private DialogueSample YesNo(int main, DialoguePhrasing phrasing, Random rng)
    {
        var (thing, yes) = YesNoThing(main, rng);
        return Single(main, phrasing, thing, Answer(yes ? ChatFormat.Yes : ChatFormat.No, false), null, rng);
    }

    /// <summary>A thing the image shows (its class, or an object its captions name) or one it does not, at even odds.</summary>
    private (string Thing, bool Yes) YesNoThing(int image, Random rng)
    {
        var words = _words[image];
        if (rng.Next(2) == 0)
        {
            var present = Objects.Where(o => o.Words.Any(words.Contains)).Select(o => o.Label).ToList();
            if (_pool[image].ClassName is { } c) present.Add(SceneClassNames.LabelOf(c));
            if (present.Count > 0) return (Pick(present, rng), true);
        }
        // Absent: no caption of the image names it, and it is not the image's class.
        var absent = Objects.Where(o => !o.Words.Any(words.Contains)).Select(o => o.Label)
            .Concat(_classes.Where(c => c != _pool[image].ClassName && !LabelWords(c).Any(words.Contains)).Select(SceneClassNames.LabelOf))
            .ToList();
        return absent.Count > 0 ? (Pick(absent, rng), false) : (SceneClassNames.LabelOf(_pool[image].ClassName ?? "trees"), _pool[image].ClassName is not null);
    }

    /// <summary>The caption words that count as showing a yes/no object (e.g. "boats": boat, boats, ship, ships); empty for other things.</summary>
    public static IReadOnlyList<string> ObjectWords(string label) => Objects.FirstOrDefault(o => o.Label == label).Words ?? [];

    private static IEnumerable<string> LabelWords(string className) => Word().Matches(SceneClassNames.LabelOf(className)).Select(m => m.Value).Append(className);

    private DialogueSample Which(int main, DialoguePhrasing phrasing, Random rng)
    {
        var cls = _pool[main].ClassName!;
        var label = SceneClassNames.LabelOf(cls);
        // The other image: another class, and none of its captions names the main image's class.
        var candidates = Enumerable.Range(0, _pool.Count).Where(i => TellsApart(main, i)).ToList();
        if (candidates.Count == 0) return Single(main, PhrasingsOf(DialogueIntent.Describe, phrasing.HeldOut, false, later: phrasing.LaterHeldOut)[0], null, Describe(main, rng), null, rng);
        var other = Pick(candidates, rng);
        var mainFirst = rng.Next(2) == 0;
        var turns = new List<DialogueTurn>
        {
            new DialogueImageTurn(mainFirst ? main : other, null), new DialogueImageTurn(mainFirst ? other : main, null),
            User(Fill(phrasing.Template, label, null)),
        };
        var answer = Answer(ChatFormat.WhichAnswer(mainFirst ? 1 : 2), false);
        turns.Add(new DialogueTextTurn(answer.Ids, true));
        return Fit(new DialogueSample(DialogueIntent.Which, phrasing, turns, answer.Text, main, false, label));
    }

    /// <summary>"Which one shows the class of <paramref name="main"/>?" has one answer: the other image is of another class and no caption of it names that class.</summary>
    private bool TellsApart(int main, int other) =>
        _pool[main].ClassName is { } cls && _pool[other].ClassName is { } c && c != cls && !LabelWords(cls).Any(_words[other].Contains);

    /// <summary>
    /// A conversation: <paramref name="first"/> and up to <paramref name="followUps"/> more questions about the images
    /// it shows (by position when it shows several), each answered and trained, as a chat goes on; after a retrieval
    /// request without images, images of what was asked join first, as the chat adds retrieved tiles. A follow-up that
    /// would not fit the LLM's positions ends the conversation. The sample's intent, answer and thing are the last
    /// exchange's.
    /// </summary>
    public DialogueSample WithFollowUps(DialogueSample first, int followUps, Random rng)
    {
        var sample = first;
        for (var f = 0; f < followUps; f++)
        {
            var turns = sample.Turns.ToList();
            // Positions ("the second one") count the images shown last, as the chat's do.
            var images = LastImageRun(turns);
            if (images.Count == 0)
            {
                var asked = sample.RetPositives?.ToList() ?? [];
                var shown = (asked.Count >= 2 ? asked : Enumerable.Range(0, _pool.Count).ToList()).OrderBy(_ => rng.Next()).Take(2 + rng.Next(2)).ToList();
                turns.AddRange(shown.Select(i => (DialogueTurn)new DialogueImageTurn(i, null)));
                images = shown;
            }
            // Asking for something new after talking about an image: the request is answered with [RET] toward what it
            // asks for, and (when the conversation goes on) images of it join, as the chat adds the retrieved tiles.
            if (_followUpRequests && rng.Next(4) == 0)
            {
                if (RequestAfter(turns, images, more: f + 1 < followUps, rng) is not { } request) break;
                sample = request;
                continue;
            }
            var several = images.Count > 1;
            var roll = rng.Next(10);
            var intent = roll switch { < 3 => DialogueIntent.Describe, < 5 => DialogueIntent.Similar, _ => DialogueIntent.YesNo };
            var position = several ? 1 + rng.Next(images.Count) : 1;
            var image = images[position - 1];
            if (images.Count == 2 && roll == 9 && TellsApart(images[0], images[1]) && TellsApart(images[1], images[0]))
            {
                intent = DialogueIntent.Which;
                position = 1 + rng.Next(2);
                image = images[position - 1];
            }
            var phrasing = Pick(Trained(intent, intent == DialogueIntent.Which ? false : several), rng);
            var (answer, positives, thing) = intent == DialogueIntent.Which
                ? (Answer(ChatFormat.WhichAnswer(position), false), null, SceneClassNames.LabelOf(_pool[image].ClassName!))
                : AnswerAbout(image, intent, rng);
            turns.Add(User(Fill(phrasing.Template, thing, several && intent != DialogueIntent.Which ? position : null)));
            turns.Add(new DialogueTextTurn(answer.Ids, true, positives));
            var next = new DialogueSample(intent, phrasing, turns, answer.Text, image, false, thing);
            if (next.TokenCount(_prefixTokens, _readingTokens) > _maxTokens) break;
            sample = next;
        }
        return sample;
    }

    /// <summary>The images of the conversation's last run of image turns (those the next question's positions count).</summary>
    private static List<int> LastImageRun(List<DialogueTurn> turns)
    {
        var run = new List<int>();
        for (var t = turns.Count - 1; t >= 0 && (turns[t] is DialogueImageTurn || run.Count == 0); t--)
            if (turns[t] is DialogueImageTurn image) run.Insert(0, image.Image);
        return run;
    }

    /// <summary>
    /// A follow-up that asks to retrieve something the images shown are not (a class or a caption of another image),
    /// answered with [RET] toward it; with <paramref name="more"/>, 2-3 of its images join after the answer. Null
    /// when it would not fit.
    /// </summary>
    private DialogueSample? RequestAfter(List<DialogueTurn> turns, List<int> shown, bool more, Random rng)
    {
        var target = OtherImage(shown[0], rng);
        while (shown.Contains(target)) target = OtherImage(shown[0], rng);
        var byClass = _pool[target].ClassName is not null && rng.Next(2) == 0;
        var thing = byClass ? SceneClassNames.LabelOf(_pool[target].ClassName!) : CaptionText(_pool[target].Captions[rng.Next(_pool[target].Captions.Count)]);
        var positives = byClass ? SameClass(target) : SameGroup(target);
        var phrasing = Pick(Trained(DialogueIntent.Retrieve), rng);
        var answer = RetrievalAnswer(thing);
        var next = turns.ToList();
        next.Add(User(Fill(phrasing.Template, thing, null)));
        next.Add(new DialogueTextTurn(answer.Ids, true, positives, thing));
        if (more) next.AddRange(positives.OrderBy(_ => rng.Next()).Take(2 + rng.Next(2)).Select(i => (DialogueTurn)new DialogueImageTurn(i, null)));
        var sample = new DialogueSample(DialogueIntent.Retrieve, phrasing, next, answer.Text, target, !byClass, thing);
        return sample.TokenCount(_prefixTokens, _readingTokens) > _maxTokens ? null : sample;
    }

    /// <summary>Several images (2-3), as a retrieval shows them, then a question about one of them by its position.</summary>
    private DialogueSample Ordinal(int main, DialoguePhrasing phrasing, Random rng)
    {
        var count = 2 + rng.Next(2);
        var position = 1 + rng.Next(count);
        var images = new List<int>();
        while (images.Count < count - 1) { var o = OtherImage(main, rng); if (!images.Contains(o)) images.Add(o); }
        images.Insert(position - 1, main);
        var turns = new List<DialogueTurn>();
        if (rng.Next(2) == 0 && _pool[main].ClassName is { } cls)
        {
            // As after "show me THING" → "here they are [RET]" and the retrieved tiles.
            turns.Add(User(Fill(Pick(Trained(DialogueIntent.Retrieve), rng).Template, SceneClassNames.LabelOf(cls), null)));
            turns.Add(new DialogueTextTurn(RetrievalAnswer(SceneClassNames.LabelOf(cls)).Ids, false));
        }
        turns.AddRange(images.Select(i => (DialogueTurn)new DialogueImageTurn(i, null)));
        var (answer, positives, thing) = AnswerAbout(main, phrasing.Intent, rng);
        turns.Add(User(Fill(phrasing.Template, thing, position)));
        turns.Add(new DialogueTextTurn(answer.Ids, true, positives));
        return Fit(new DialogueSample(phrasing.Intent, phrasing, turns, answer.Text, main, false, thing));
    }

    /// <summary>The answer to a describe, "more like this" or yes/no question about one image: its tokens, the [RET]'s positives, the thing asked about.</summary>
    private ((int[] Ids, string Text) Answer, IReadOnlySet<int>? Positives, string? Thing) AnswerAbout(int image, DialogueIntent intent, Random rng)
    {
        switch (intent)
        {
            case DialogueIntent.Describe: return (Describe(image, rng), null, null);
            case DialogueIntent.Similar: return (Answer(ChatFormat.SimilarAnswer, true), SameGroup(image), null);
            case DialogueIntent.YesNo:
                var (thing, yes) = YesNoThing(image, rng);
                return (Answer(yes ? ChatFormat.Yes : ChatFormat.No, false), null, thing);
            default: throw new ArgumentException($"{intent} is not a question about one image", nameof(intent));
        }
    }

    /// <summary>Drops the optional parts (descriptions, a leading request) until the dialogue fits the LLM's positions.</summary>
    private DialogueSample Fit(DialogueSample sample)
    {
        var turns = sample.Turns.ToList();
        while ((sample with { Turns = turns }).TokenCount(_prefixTokens, _readingTokens) > _maxTokens)
        {
            var described = turns.FindIndex(t => t is DialogueImageTurn { Description: not null });
            if (described >= 0) { turns[described] = ((DialogueImageTurn)turns[described]) with { Description = null }; continue; }
            if (turns.Count > 2 && turns[0] is DialogueTextTurn && turns[1] is DialogueTextTurn && turns.Count > 4) { turns.RemoveRange(0, 2); continue; }
            throw new InvalidOperationException($"a {sample.Intent} dialogue needs {(sample with { Turns = turns }).TokenCount(_prefixTokens, _readingTokens)} positions; the model has {_maxTokens}");
        }
        return sample with { Turns = turns };
    }

    private (int[] Ids, string Text) Describe(int image, Random rng)
    {
        var caption = _pool[image].Captions[rng.Next(_pool[image].Captions.Count)];
        return (ChatFormat.Answer(_tokenizer, Truncated(caption), false), caption);
    }

    private int[] DescriptionOf(int image, Random rng) =>
        ChatFormat.Description(_tokenizer, Truncated(_pool[image].Captions[rng.Next(_pool[image].Captions.Count)]));

    /// <summary>Captions cut to 36 pieces (or <paramref name="maxPieces"/>) so an answer stays within the training's caption length.</summary>
    private string Truncated(string caption, int maxPieces = 36)
    {
        var pieces = _tokenizer.EncodeSentencePiece(caption.Trim());
        return pieces.Count <= maxPieces ? caption.Trim() : _tokenizer.Decode(pieces.Take(maxPieces));
    }

    private (int[] Ids, string Text) Answer(string text, bool retrieves) => (ChatFormat.Answer(_tokenizer, text, retrieves), text);

    /// <summary>"here they are [RET]", or naming the thing (cut to 32 pieces, so the answer and its [RET] fit the 40 tokens the chat lets it write).</summary>
    private (int[] Ids, string Text) RetrievalAnswer(string thing) =>
        Answer(_namesThing ? ChatFormat.RetrievalAnswerNaming(Truncated(thing, 32)) : ChatFormat.RetrievalAnswer, true);

    private DialogueTextTurn User(string text) => new(ChatFormat.UserTurn(_tokenizer, text), false, UserText: ChatFormat.NormaliseUserText(text));

    private static string Fill(string template, string? thing, int? position)
    {
        var text = template;
        if (text.Contains("{thing}", StringComparison.Ordinal)) text = text.Replace("{thing}", thing ?? throw new ArgumentException($"'{template}' needs a thing"), StringComparison.Ordinal);
        if (text.Contains("{ord}", StringComparison.Ordinal))
            text = text.Replace("{ord}", ChatFormat.Ordinal(position ?? throw new ArgumentException($"'{template}' needs a position")), StringComparison.Ordinal);
        return text;
    }

    /// <summary>A caption as a search phrase: lower case, without "there is" / "here are" ... and its closing full stop.</summary>
    public static string CaptionText(string caption)
    {
        var text = caption.Trim().TrimEnd('.', ' ').ToLowerInvariant();
        text = Presentation().Replace(text, "");
        return Truncate(text.Length == 0 ? caption.Trim().ToLowerInvariant() : text, 160);
    }

    [GeneratedRegex("^(there|here|this|it) (is|are|was|were) (an? )?(view of )?")]
    private static partial Regex Presentation();

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];

    private int OtherImage(int main, Random rng)
    {
        var o = rng.Next(_pool.Count - 1);
        return o >= main ? o + 1 : o;
    }

    private HashSet<int> SameGroup(int image) => Enumerable.Range(0, _pool.Count).Where(i => _pool[i].Group == _pool[image].Group).ToHashSet();

    private HashSet<int> SameClass(int image) => Enumerable.Range(0, _pool.Count).Where(i => _pool[i].ClassName == _pool[image].ClassName).ToHashSet();

    private static T Pick<T>(IReadOnlyList<T> items, Random rng) => items[rng.Next(items.Count)];
}

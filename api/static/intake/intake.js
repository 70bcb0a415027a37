/* The intake page: render the product's Questionnaire with LHC-Forms, post the answers.
 *
 * No inline script (the page's CSP allows only this product's files). The
 * Questionnaire comes embedded in the page as JSON; the answers go, as the
 * QuestionnaireResponse LHC-Forms exports, to the page's own signed URL. The
 * server answers 303 to the next page (fetch follows it; the browser then goes
 * there), or an OperationOutcome whose problems are listed as text, never HTML.
 */
(function () {
  'use strict';

  var FORM_ID = 'intake-form';
  var container = document.getElementById(FORM_ID);
  var button = document.getElementById('intake-submit');
  var loading = document.getElementById('intake-loading');
  var problems = document.getElementById('intake-problems');
  var problemList = document.getElementById('intake-problem-list');
  var questionnaire = JSON.parse(document.getElementById('intake-questionnaire').textContent);

  /* linkId -> question text, so a problem names the question a parent sees. */
  var questions = {};
  (function index(items) {
    (items || []).forEach(function (item) {
      if (item.text) { questions[item.linkId] = item.text; }
      index(item.item);
    });
  })(questionnaire.item);

  /* Bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) in a message
   * (a refusal may echo what was sent, e.g. a linkId) are shown as visible [U+XXXX]
   * markers, never left to reorder the text: the browser twin of the server's one
   * mapping, api.fhir._tables.shown (the report page and FHIR narratives), same markers. */
  var BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  function shown(text) {
    return String(text).replace(BIDI_CONTROL, function (control) {
      return '[U+' + ('000' + control.charCodeAt(0).toString(16).toUpperCase()).slice(-4) + ']';
    });
  }

  function showProblems(lines) {
    problemList.textContent = '';
    lines.forEach(function (line) {
      var entry = document.createElement('li');
      entry.textContent = shown(line);
      entry.setAttribute('dir', 'auto');  /* each message isolated from the next */
      problemList.appendChild(entry);
    });
    problems.hidden = false;
    problems.focus();
  }

  /* The question a linkId names; a section (``twitching``, when its required body sites
   * were left out) by its first question, so the parent reads a question, not a path. */
  function questionOf(linkId) {
    if (questions[linkId]) {
      return questions[linkId];
    }
    var first = Object.keys(questions).filter(function (id) {
      return id.indexOf(linkId + '.') === 0;
    })[0];
    return first ? questions[first] : null;
  }

  function describe(issue) {
    var text = issue.diagnostics || 'This answer could not be used.';
    var match = /^linkId ([A-Za-z0-9_.]+): (.*)$/.exec(text);
    var question = match && questionOf(match[1]);
    if (question) {
      return question + ' ' + match[2].replace('is required but was omitted or null',
                                                'needs an answer.');
    }
    return text;
  }

  function whenLoaded(done) {
    var started = Date.now();
    (function poll() {
      if (window.LForms && LForms.Util && LForms.Util.addFormToPage &&
          LForms.Util.convertFHIRQuestionnaireToLForms) {
        done();
      } else if (Date.now() - started > 30000) {
        loading.textContent = 'The questionnaire could not be loaded. Please reload the page.';
      } else {
        setTimeout(poll, 50);
      }
    })();
  }

  function send() {
    button.disabled = true;
    problems.hidden = true;
    var answers = LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', FORM_ID);
    if (!answers || typeof answers !== 'object') {
      /* The form library exports nothing while an answer is invalid (letters in a
       * number, 1.5 for a whole number): say which, never post an empty body. */
      var invalid = (LForms.Util.checkValidity && LForms.Util.checkValidity(FORM_ID)) || [];
      showProblems(invalid.length ? invalid : ['Some answers are not valid: correct the ' +
        'fields marked in red, then send again.']);
      button.disabled = false;
      return;
    }
    fetch(container.getAttribute('data-submit-url'), {
      method: 'POST',
      credentials: 'same-origin',
      redirect: 'follow',
      headers: {'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json'},
      body: JSON.stringify(answers)
    }).then(function (response) {
      if (response.redirected) {
        window.location.assign(response.url);
        return null;
      }
      return response.json().then(function (outcome) {
        var issues = (outcome && outcome.issue) || [];
        if (response.status === 404) {
          showProblems(['This link cannot be used any more: it is not valid, has expired or ' +
                        'the answers were already sent.']);
          return;
        }
        showProblems(issues.length ? issues.map(describe) :
          ['The answers could not be sent (HTTP ' + response.status + ').']);
        button.disabled = false;
      });
    }).catch(function () {
      showProblems(['The answers could not be sent. Check the connection and try again.']);
      button.disabled = false;
    });
  }

  /* LHC-Forms renders the unit beside a number (read-only input) with a label that
   * points at a table header its vertical layout does not have, so screen readers
   * (and axe) find no name: name each one after its question, also when an answer
   * later reveals more questions. */
  function nameUnits() {
    container.querySelectorAll('input[id^="unit_"]:not([aria-label])').forEach(function (unit) {
      var linkId = unit.id.slice('unit_'.length).replace(/\/[0-9/]*$/, '').split('/').pop();
      unit.setAttribute('aria-label', 'Unit' + (questions[linkId] ? ' of: ' + questions[linkId] : ''));
    });
  }
  new MutationObserver(nameUnits).observe(container, {childList: true, subtree: true});

  whenLoaded(function () {
    var form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, 'R4');
    Promise.resolve(LForms.Util.addFormToPage(form, FORM_ID, {showCodingInstruction: true})).then(function () {
      loading.hidden = true;
      button.disabled = false;
      button.addEventListener('click', send);
    }, function () {
      loading.textContent = 'The questionnaire could not be shown. Please reload the page.';
    });
  });
})();

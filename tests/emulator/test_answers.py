"""Answers a reader accepts, through the frameworks that parse them, over real loopback HTTP.

Each test is one rule of the README's "How the emulator answers" contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.output_parsers import PydanticOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.program import LLMTextCompletionProgram
from llama_index.core.prompts import PromptTemplate
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import ToolMetadata
from pydantic import BaseModel, Field

from langchain_tokenhub import ChatTokenHub
from llama_index_tokenhub import TokenHub
from tests.llama_index import fixtures
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.formats import best_sentences
from tokenhub_emulator.meaning import field_kind, places, proper_nouns, time_phrases

sync_loop = fixtures.sync_loop  # llama-index's sync paths get a loop that is closed afterwards

DATA = Path(__file__).resolve().parents[2] / "notebooks" / "data"
FESTIVAL = (DATA / "lantern_festival.md").read_text()
VARIETIES = (DATA / "varieties.md").read_text()


class AppleFacts(BaseModel):
    variety: str = Field(description="name of the apple variety")
    harvest: str = Field(description="when it is harvested")
    good_for_cider: bool


class Variety(BaseModel):
    name: str
    harvest: str
    crate_price_usd: float


class Person(BaseModel):
    name: str
    age: int
    city: str


@pytest.fixture
def chat_model(tokenhub_emulator: TokenHubEmulator) -> ChatTokenHub:
    return ChatTokenHub(max_tokens=400)


@pytest.fixture
def llama(tokenhub_emulator: TokenHubEmulator) -> TokenHub:
    return TokenHub(max_tokens=400)


# -- the pieces ----------------------------------------------------------------------------------


def test_the_sentences_that_answer_a_question() -> None:
    context = "\n\n".join((DATA / n).read_text() for n in sorted(p.name for p in DATA.glob("*.md")))
    assert best_sentences(context, "When is the Lantern Harvest festival held?")[:2] == [
        "The Lantern Harvest is Marrowfield's autumn festival.",
        "It is held every year on the first Saturday of October, in the orchards above "
        "Harrow's End.",
    ]
    assert best_sentences(context, "What is the price of a Duskwine crate?") == [
        "Crate price: 22.00 USD per 20 kg crate."
    ]
    assert best_sentences(context, "What is the capital of Peru?") == []


def test_what_a_field_means_and_what_fills_it() -> None:
    assert field_kind("city") == field_kind("destination") == "place"
    assert field_kind("harvest", description="when it is harvested") == "time"
    assert field_kind("variety") == field_kind("author") == "name"
    assert field_kind("search_query") == "query" and field_kind("summary") == "text"
    assert places("What is the weather in new york right now?") == ["New York"]
    assert places("Flights to Paris, France please") == ["Paris, France"]
    assert time_phrases("held on the first Saturday of October, harvested in late September") == [
        "the first Saturday of October",
        "late September",
    ]
    assert proper_nouns("Copperbell is harvested in late September. Return JSON.") == ["Copperbell"]


# -- tool arguments and structured values ---------------------------------------------------------


def test_a_city_argument_is_the_place_the_question_names(chat_model: ChatTokenHub) -> None:
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
        """The current weather in a city, in celsius or fahrenheit."""
        return city

    ai = chat_model.bind_tools([get_weather]).invoke(
        "What is the weather in new york in fahrenheit?"
    )
    assert ai.tool_calls[0]["args"] == {"city": "New York", "unit": "fahrenheit"}


def test_structured_output_fields_by_meaning(chat_model: ChatTokenHub) -> None:
    facts = chat_model.with_structured_output(AppleFacts).invoke(
        "Copperbell is a tart apple harvested in late September; it is the backbone of cider."
    )
    assert facts == AppleFacts(variety="Copperbell", harvest="late September", good_for_cider=True)


def test_json_mode_keys_get_typed_values(chat_model: ChatTokenHub) -> None:
    person = chat_model.with_structured_output(Person, method="json_mode").invoke(
        "Return a JSON object with keys 'name', 'age' and 'city' for: Ada Lovelace, 36, lives in "
        "London."
    )
    assert person == Person(name="Ada Lovelace", age=36, city="London")
    loose = chat_model.with_structured_output(None, method="json_mode").invoke(
        "Describe it as JSON with keys 'variety' (string), 'crate_price' (number) and "
        "'keeps_weeks' (integer). Copperbell keeps for 6 weeks and costs 18.50 USD a crate."
    )
    assert loose == {"variety": "Copperbell", "crate_price": 18.5, "keeps_weeks": 6}


def test_a_pydantic_output_parser_prompt_gets_a_valid_object(chat_model: ChatTokenHub) -> None:
    parser = PydanticOutputParser(pydantic_object=Person)
    prompt = ChatPromptTemplate.from_template("Extract the person.\n{format}\n{text}").partial(
        format=parser.get_format_instructions()
    )
    chain = prompt | chat_model | parser
    person = chain.invoke({"text": "Grace Hopper was 85 and lived in Arlington."})
    assert person == Person(name="Grace Hopper", age=85, city="Arlington")


# -- RAG -----------------------------------------------------------------------------------------


def test_a_langchain_rag_prompt_gets_the_answering_sentences(chat_model: ChatTokenHub) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "Use the following pieces of retrieved context to answer the question. If you "
                "don't know the answer, say that you don't know.\n\nContext: {context}",
            ),
            ("human", "{question}"),
        ]
    )
    chain = prompt | chat_model | StrOutputParser()
    assert chain.invoke({"context": FESTIVAL, "question": "Is entry free?"}) == (
        "[emulator] Entry is free."
    )
    inline = ChatPromptTemplate.from_template(
        "Answer the question based only on the following context:\n{context}\n\n"
        "Question: {question}"
    )
    answer = (inline | chat_model | StrOutputParser()).invoke(
        {"context": FESTIVAL, "question": "What do children carry at dusk?"}
    )
    assert answer.startswith("[emulator] At dusk, children carry lanterns")


def test_a_llamaindex_query_and_chat_engine_answer_from_the_context(
    llama: TokenHub, agent_memory: Any
) -> None:
    docs = [
        Document(text=(DATA / n).read_text()) for n in ("lantern_festival.md", "cider_rules.md")
    ]
    index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=llama, similarity_top_k=2)
    answer = str(engine.query("When is the Lantern Harvest festival held?"))
    assert answer.startswith("[emulator] The Lantern Harvest is Marrowfield's autumn festival.")
    assert "first Saturday of October" in answer

    chat = index.as_chat_engine(
        chat_mode="condense_plus_context", llm=llama, similarity_top_k=2, memory=agent_memory()
    )
    chat.chat("Which apples may be pressed for Marrowfield cider?")
    follow_up = str(chat.chat("And how long must that cider ferment?"))
    assert "fermented in oak barrels in the packing house cellar for at least five months" in (
        follow_up
    )


def test_a_standalone_question_prompt_gets_the_follow_up(chat_model: ChatTokenHub) -> None:
    contextualize = ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "Given a chat history and the latest user question which might reference "
                "context in the chat history, formulate a standalone question. Do NOT answer it.",
            ),
            ("human", "{input}"),
        ]
    )
    chain = contextualize | chat_model | StrOutputParser()
    assert chain.invoke({"input": "And how long must it ferment?"}) == (
        "And how long must it ferment?"
    )


def test_context_that_does_not_answer_says_so(chat_model: ChatTokenHub) -> None:
    prompt = ChatPromptTemplate.from_template("Context: {context}\nQuestion: {question}\nAnswer:")
    answer = (prompt | chat_model | StrOutputParser()).invoke(
        {"context": FESTIVAL, "question": "What is the capital of Peru?"}
    )
    assert answer == "[emulator] The context does not answer this question."


# -- text-parsing components ---------------------------------------------------------------------


def test_llm_text_completion_program(llama: TokenHub) -> None:
    program = LLMTextCompletionProgram.from_defaults(
        output_cls=Variety,
        prompt=PromptTemplate("Extract the Duskwine variety from this text:\n{text}"),
        llm=llama,
    )
    assert program(text=VARIETIES) == Variety(
        name="Duskwine", harvest="mid October", crate_price_usd=22.0
    )


def test_llm_single_selector(llama: TokenHub) -> None:
    selector = LLMSingleSelector.from_defaults(llm=llama)
    choices = [
        ToolMetadata(name="prices", description="Apple varieties and their crate prices"),
        ToolMetadata(name="festival", description="The Lantern Harvest festival and its date"),
    ]
    result = selector.select(choices, "When is the festival?")
    assert result.ind == 1
    assert result.reason.startswith("[emulator]")


# llama-index-core 0.14's ReActAgent reads ctx.is_running inside its step, which workflows deprecates.
@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
async def test_react_agent_runs_a_tool_end_to_end(
    llama: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    agent = ReActAgent(tools=[multiply], llm=llama)
    result = await agent.run(
        user_msg="Use the multiply tool: what is 12 times 7?", memory=agent_memory()
    )
    assert str(result) == "[emulator] multiply returned 84"
    first_step = json.loads(tokenhub_emulator.requests[0].raw_body)
    assert "Action Input" in first_step["messages"][0]["content"]
